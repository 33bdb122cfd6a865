#include "chat_template.h"

namespace ei {

namespace {

bool contains(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }

// llama.cpp trims with isspace() in the C locale: the six ASCII whitespace bytes.
std::string_view trim(std::string_view s) {
    constexpr std::string_view ws = " \t\n\v\f\r";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    const size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

}  // namespace

std::optional<ChatFormat> chat_format_from_name(std::string_view name) {
    if (name == "chatml") return ChatFormat::ChatML;
    if (name == "llama3") return ChatFormat::Llama3;
    if (name == "llama2" || name == "llama2-sys") return ChatFormat::Llama2;
    return std::nullopt;
}

const char* chat_format_name(ChatFormat format) {
    switch (format) {
        case ChatFormat::ChatML: return "chatml";
        case ChatFormat::Llama3: return "llama3";
        case ChatFormat::Llama2: return "llama2";
    }
    return "unknown";
}

std::optional<ChatFormat> detect_chat_format(std::string_view t) {
    if (auto named = chat_format_from_name(t)) return named;
    if (t.empty()) return std::nullopt;

    // The checks below keep llama.cpp's order, because the markers overlap: a template
    // with <|im_start|> is ChatML before anything else, and [INST] is Llama 2 only when
    // none of the Mistral markers is present.
    if (contains(t, "<|im_start|>")) {
        // Phi-4 adds <|im_sep|>; SmolVLM uses <|im_start|> only as BOS. Neither is ChatML.
        if (contains(t, "<|im_sep|>") || contains(t, "<end_of_utterance>")) return std::nullopt;
        return ChatFormat::ChatML;
    }
    if (t.substr(0, 7) == "mistral" || contains(t, "[INST]")) {
        if (contains(t, "[SYSTEM_PROMPT]") || contains(t, "' [INST] ' + system_message") ||
            contains(t, "[AVAILABLE_TOOLS]"))
            return std::nullopt;  // Mistral v1/v3/v7: different spacing and system handling
        // llama.cpp splits the remainder into llama2 variants (system support, BOS inside
        // history, strip); we render them all as "llama2-sys", which differs from the
        // others only when a system message is present or contents carry edge whitespace.
        return ChatFormat::Llama2;
    }
    // Markers llama.cpp tests before Llama 3's; a template carrying them is another format.
    if ((contains(t, "<|assistant|>") && (contains(t, "<|end|>") || contains(t, "<|user|>"))) ||
        contains(t, "[gMASK]<sop>") || (contains(t, "<|user|>") && contains(t, "<|endoftext|>")) ||
        contains(t, "bos_token + message['role']") || contains(t, "<start_of_turn>") ||
        contains(t, "GPT4 Correct ") || (contains(t, "USER: ") && contains(t, "ASSISTANT: ")) ||
        (contains(t, "### Instruction:") && contains(t, "<|EOT|>")) ||
        (contains(t, "<|START_OF_TURN_TOKEN|>") && contains(t, "<|USER_TOKEN|>")))
        return std::nullopt;
    if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) return ChatFormat::Llama3;
    return std::nullopt;
}

std::string format_chat(ChatFormat format, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    std::string out;
    switch (format) {
        case ChatFormat::ChatML:
            for (const auto& m : messages) {
                out += "<|im_start|>";
                out += m.role;
                out += '\n';
                out += m.content;
                out += "<|im_end|>\n";
            }
            if (add_generation_prompt) out += "<|im_start|>assistant\n";
            break;

        case ChatFormat::Llama3:
            // llama.cpp trims each content here (the official template applies | trim).
            for (const auto& m : messages) {
                out += "<|start_header_id|>";
                out += m.role;
                out += "<|end_header_id|>\n\n";
                out += trim(m.content);
                out += "<|eot_id|>";
            }
            if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;

        case ChatFormat::Llama2: {
            // The first "[INST] " is written before the loop (the BOS before it is the
            // tokenizer's); each assistant reply closes the turn with "</s>" and the next
            // message reopens one. There is no generation prompt to add: a conversation
            // ending in a user message already ends with " [/INST]".
            bool inside_turn = true;
            out += "[INST] ";
            for (const auto& m : messages) {
                if (!inside_turn) {
                    inside_turn = true;
                    out += "[INST] ";
                }
                if (m.role == "system") {
                    out += "<<SYS>>\n";
                    out += m.content;
                    out += "\n<</SYS>>\n\n";
                } else if (m.role == "user") {
                    out += m.content;
                    out += " [/INST]";
                } else {
                    out += m.content;
                    out += "</s>";
                    inside_turn = false;
                }
            }
            break;
        }
    }
    return out;
}

std::vector<std::string> chat_stop_strings(ChatFormat format) {
    switch (format) {
        // The end-of-turn marker first; the others catch a model that skips it and
        // starts the next turn or ends the text.
        case ChatFormat::ChatML: return {"<|im_end|>", "<|im_start|>", "<|endoftext|>"};
        case ChatFormat::Llama3: return {"<|eot_id|>", "<|start_header_id|>", "<|end_of_text|>"};
        case ChatFormat::Llama2: return {"</s>", "[INST]"};
    }
    return {};
}

}  // namespace ei
