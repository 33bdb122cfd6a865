// Built-in chat formats. There is no Jinja engine: the GGUF's tokenizer.chat_template is
// recognised by distinctive markers (the same tests, in the same order, as llama.cpp's
// llm_chat_detect_template), and each format is written out by hand to produce exactly
// the text llama.cpp's llm_chat_apply_template produces for it.
//
// BOS: none of these formats writes BOS text ("<s>", "<|begin_of_text|>"); llama.cpp
// leaves the leading BOS to the tokenizer (add_bos), and so do we.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ei {

enum class ChatFormat {
    ChatML,  // <|im_start|>role\ncontent<|im_end|>\n  (Qwen, many fine-tunes)
    Llama3,  // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
    Llama2,  // [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST]assistant</s>  (llama.cpp's "llama2-sys")
};

// The format a chat template (Jinja text) uses, or nullopt when it is none of ours
// (including templates llama.cpp would route to another format, e.g. Phi-4 or Mistral v7,
// which share a marker with ours). A bare format name is accepted too, as llama.cpp does.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);

// "chatml", "llama3", "llama2" (and llama.cpp's alias "llama2-sys"); nullopt otherwise.
std::optional<ChatFormat> chat_format_from_name(std::string_view name);
const char* chat_format_name(ChatFormat format);

struct ChatMessage {
    std::string role, content;
};

// The prompt text for a conversation. add_generation_prompt appends the assistant
// header (ChatML, Llama 3); Llama 2 has none, its prompt already ends at " [/INST]".
std::string format_chat(ChatFormat format, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// Text that ends the assistant's turn, for StopMatcher when the end-of-turn token is
// rendered as text rather than caught by id.
std::vector<std::string> chat_stop_strings(ChatFormat format);

}  // namespace ei
