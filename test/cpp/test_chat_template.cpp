// Chat formats: exact prompt text (as llama.cpp's built-in llm_chat_apply_template
// renders it), detection on real templates, names and stop strings.
#include <string>
#include <vector>

#include "chat_template.h"
#include "check.h"
#include "error.h"
#include "gguf.h"

using ei::ChatFormat;
using ei::ChatMessage;

namespace {

// llama.cpp's own test conversation (tests/test-chat-template.cpp); the padded assistant
// reply shows which formats trim.
const std::vector<ChatMessage> kLlamaCppConversation = {
    {"system", "You are a helpful assistant"}, {"user", "Hello"},
    {"assistant", "Hi there"},                 {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},  {"user", "Another question"},
};

const std::vector<ChatMessage> kShort = {
    {"system", "Be brief."},
    {"user", "What is 2+2?"},
    {"assistant", "4"},
    {"user", "And 3+3?"},
};

// Real templates, as shipped in tokenizer_config.json / GGUF metadata.
const char* kLlama3Template =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const char* kLlama2ChatTemplate =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const char* kMistralV02Template =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
    "raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if "
    "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";

const char* kMistralV7Template =
    "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}{{- '[INST]' + "
    "message['content'] + '[/INST]' }}{%- elif message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' + "
    "message['content'] + '[/SYSTEM_PROMPT]' }}{%- elif message['role'] == 'assistant' %}{{- message['content'] + "
    "eos_token }}{%- endif %}{%- endfor %}";

const char* kPhi4Template =
    "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% elif (message['role'] == 'assistant') %}{{'<|im_start|>assistant<|im_sep|>' "
    "+ message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";

const char* kGemmaTemplate =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% "
    "endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else "
    "%}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
    "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

}  // namespace

TEST(chatml_matches_llama_cpp) {
    CHECK(ei::format_chat(ChatFormat::ChatML, kLlamaCppConversation, true) ==
          "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
          "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
          "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
          "<|im_start|>assistant\n");
    CHECK(ei::format_chat(ChatFormat::ChatML, kShort, true) ==
          "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
          "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n");
    CHECK(ei::format_chat(ChatFormat::ChatML, kShort, false) ==
          "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
          "<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n");
    CHECK(ei::format_chat(ChatFormat::ChatML, {}, true) == "<|im_start|>assistant\n");
}

TEST(llama3_matches_llama_cpp) {
    // Contents are trimmed; no <|begin_of_text|> (the tokenizer adds BOS).
    CHECK(ei::format_chat(ChatFormat::Llama3, kLlamaCppConversation, true) ==
          "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK(ei::format_chat(ChatFormat::Llama3, kShort, true) ==
          "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK(ei::format_chat(ChatFormat::Llama3, {{"user", " \t\n hi \r\n"}}, false) ==
          "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
    CHECK(ei::format_chat(ChatFormat::Llama3, {{"user", "   "}}, false) ==
          "<|start_header_id|>user<|end_header_id|>\n\n<|eot_id|>");
}

TEST(llama2_matches_llama_cpp_llama2_sys) {
    // llama.cpp's "llama2-sys": system in <<SYS>>, no trimming, no <s> text anywhere
    // (the leading BOS is the tokenizer's), "</s>" closes each assistant turn.
    CHECK(ei::format_chat(ChatFormat::Llama2, kLlamaCppConversation, true) ==
          "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
          "[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]");
    const std::string want_short =
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWhat is 2+2? [/INST]4</s>[INST] And 3+3? [/INST]";
    CHECK(ei::format_chat(ChatFormat::Llama2, kShort, true) == want_short);
    // llama.cpp ignores add_generation_prompt for this format.
    CHECK(ei::format_chat(ChatFormat::Llama2, kShort, false) == want_short);
    CHECK(ei::format_chat(ChatFormat::Llama2, {{"user", "Hi"}}, true) == "[INST] Hi [/INST]");
    // Ending on an assistant message leaves no dangling "[INST] ".
    CHECK(ei::format_chat(ChatFormat::Llama2, {{"user", "Hi"}, {"assistant", "Yo"}}, true) ==
          "[INST] Hi [/INST]Yo</s>");
}

TEST(detect_qwen2_gguf_template_is_chatml) {
    auto f = ei::GgufFile::open(check::testdata("vocab/ggml-vocab-qwen2.gguf"));
    const std::string t = f->get_string("tokenizer.chat_template");
    CHECK(!t.empty());
    auto fmt = ei::detect_chat_format(t);
    CHECK(fmt.has_value());
    CHECK(fmt == ChatFormat::ChatML);
}

TEST(detect_llama_bpe_gguf_has_no_template) {
    // The llama-bpe vocab file carries no chat template: nothing to detect.
    auto f = ei::GgufFile::open(check::testdata("vocab/ggml-vocab-llama-bpe.gguf"));
    CHECK(f->find("tokenizer.chat_template") == nullptr);
    CHECK(!ei::detect_chat_format(f->get_string("tokenizer.chat_template")).has_value());
}

TEST(detect_real_templates) {
    CHECK(ei::detect_chat_format(kLlama3Template) == ChatFormat::Llama3);
    CHECK(ei::detect_chat_format(kLlama2ChatTemplate) == ChatFormat::Llama2);
    CHECK(ei::detect_chat_format(kMistralV02Template) == ChatFormat::Llama2);
    // Templates that share a marker with ours but are other formats.
    CHECK(!ei::detect_chat_format(kMistralV7Template).has_value());
    CHECK(!ei::detect_chat_format(kPhi4Template).has_value());
    CHECK(!ei::detect_chat_format(kGemmaTemplate).has_value());
    CHECK(!ei::detect_chat_format("").has_value());
    CHECK(!ei::detect_chat_format("{% for m in messages %}{{ m['content'] }}{% endfor %}").has_value());
    // One header marker alone is not Llama 3.
    CHECK(!ei::detect_chat_format("{{ '<|start_header_id|>' }}").has_value());
    // A bare name is accepted as a template, as in llama.cpp.
    CHECK(ei::detect_chat_format("llama3") == ChatFormat::Llama3);
}

TEST(format_names_round_trip) {
    for (ChatFormat f : {ChatFormat::ChatML, ChatFormat::Llama3, ChatFormat::Llama2})
        CHECK(ei::chat_format_from_name(ei::chat_format_name(f)) == f);
    CHECK(std::string(ei::chat_format_name(ChatFormat::ChatML)) == "chatml");
    CHECK(std::string(ei::chat_format_name(ChatFormat::Llama3)) == "llama3");
    CHECK(std::string(ei::chat_format_name(ChatFormat::Llama2)) == "llama2");
    CHECK(ei::chat_format_from_name("llama2-sys") == ChatFormat::Llama2);
    CHECK(!ei::chat_format_from_name("ChatML").has_value());
    CHECK(!ei::chat_format_from_name("gemma").has_value());
    CHECK(!ei::chat_format_from_name("").has_value());
}

TEST(stop_strings) {
    auto chatml = ei::chat_stop_strings(ChatFormat::ChatML);
    CHECK(!chatml.empty() && chatml[0] == "<|im_end|>");
    auto l3 = ei::chat_stop_strings(ChatFormat::Llama3);
    CHECK(!l3.empty() && l3[0] == "<|eot_id|>");
    auto l2 = ei::chat_stop_strings(ChatFormat::Llama2);
    CHECK(!l2.empty() && l2[0] == "</s>");
    // Each format's prompt ends a finished assistant turn with its first stop string.
    for (ChatFormat f : {ChatFormat::ChatML, ChatFormat::Llama3, ChatFormat::Llama2}) {
        const std::string s = ei::format_chat(f, {{"user", "a"}, {"assistant", "b"}}, false);
        const std::string stop = ei::chat_stop_strings(f)[0];
        CHECK(s.find("b" + stop) != std::string::npos);
    }
}
