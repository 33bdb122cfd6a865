package io.edgeinfinite;

/**
 * Settings of a {@link Conversation}.
 *
 * @param format       the chat format ("chatml", "llama3", "llama2"); null: the model's own template
 * @param systemPrompt the system message that opens the conversation; null: none
 * @param generate     sampling and stopping settings of each reply (its {@code chat} flag is
 *                     ignored: a conversation always formats its turns)
 */
public record ConversationOptions(String format, String systemPrompt, GenerateOptions generate) {

    public ConversationOptions {
        if (generate == null) generate = GenerateOptions.defaults();
    }

    /** The model's template, no system prompt, default sampling. */
    public static ConversationOptions defaults() {
        return builder().build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        return new Builder().format(format).systemPrompt(systemPrompt).generate(generate);
    }

    public static final class Builder {
        private String format;
        private String systemPrompt;
        private GenerateOptions generate;

        /** A built-in chat format by name, for models whose template is absent or not recognised. */
        public Builder format(String name) {
            format = name;
            return this;
        }

        public Builder systemPrompt(String text) {
            systemPrompt = text;
            return this;
        }

        /** Settings of each reply, unless {@link Conversation#send(String, GenerateOptions)} names others. */
        public Builder generate(GenerateOptions options) {
            generate = options;
            return this;
        }

        public ConversationOptions build() {
            return new ConversationOptions(format, systemPrompt, generate);
        }
    }
}
