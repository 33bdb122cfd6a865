package io.edgeinfinite;

import java.util.List;

/**
 * Sampling and stopping settings for one generation. Defaults follow llama.cpp's:
 * temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no repetition penalty, 256 tokens.
 */
public record GenerateOptions(boolean greedy, float temperature, int topK, float topP, float minP,
        float repeatPenalty, int repeatLastN, long seed, int maxTokens, List<String> stopStrings, boolean chat) {

    /**
     * Checks every setting here, before a session sees any of it, so that a bad setting
     * never leaves a prompt half consumed (the native sampler applies the same rules).
     */
    public GenerateOptions {
        stopStrings = List.copyOf(stopStrings);
        if (!Float.isFinite(temperature) || temperature < 0) {
            throw new InvalidArgumentException("temperature must be finite and >= 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) throw new InvalidArgumentException("top_p must be in (0, 1], got " + topP);
        if (Float.isNaN(minP) || minP > 1) throw new InvalidArgumentException("min_p must be <= 1, got " + minP);
        if (!Float.isFinite(repeatPenalty) || repeatPenalty <= 0) {
            throw new InvalidArgumentException("repeat_penalty must be finite and > 0, got " + repeatPenalty);
        }
        if (repeatLastN < 0) throw new InvalidArgumentException("repeat_last_n must be >= 0, got " + repeatLastN);
        if (maxTokens < 0) throw new InvalidArgumentException("max_tokens must be >= 0, got " + maxTokens);
    }

    public static Builder builder() {
        return new Builder();
    }

    public static GenerateOptions defaults() {
        return builder().build();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.greedy = greedy;
        b.temperature = temperature;
        b.topK = topK;
        b.topP = topP;
        b.minP = minP;
        b.repeatPenalty = repeatPenalty;
        b.repeatLastN = repeatLastN;
        b.seed = seed;
        b.maxTokens = maxTokens;
        b.stopStrings = stopStrings;
        b.chat = chat;
        return b;
    }

    public static final class Builder {
        private boolean greedy;
        private float temperature = 0.8f;
        private int topK = 40;
        private float topP = 0.95f;
        private float minP = 0.05f;
        private float repeatPenalty = 1.0f;
        private int repeatLastN = 64;
        private long seed = 0x5EED;
        private int maxTokens = 256;
        private List<String> stopStrings = List.of();
        private boolean chat;

        /** Always pick the most likely token. */
        public Builder greedy() {
            greedy = true;
            return this;
        }

        public Builder temperature(float t) {
            temperature = t;
            return this;
        }

        public Builder topK(int k) {
            topK = k;
            return this;
        }

        public Builder topP(float p) {
            topP = p;
            return this;
        }

        public Builder minP(float p) {
            minP = p;
            return this;
        }

        public Builder repeatPenalty(float penalty, int lastN) {
            repeatPenalty = penalty;
            repeatLastN = lastN;
            return this;
        }

        /** Same seed, same prompt, same settings: same output. */
        public Builder seed(long s) {
            seed = s;
            return this;
        }

        public Builder maxTokens(int n) {
            maxTokens = n;
            return this;
        }

        public Builder stopStrings(List<String> stops) {
            stopStrings = stops;
            return this;
        }

        /** Wrap the prompt as a user message in the model's chat template. */
        public Builder chat(boolean on) {
            chat = on;
            return this;
        }

        public GenerateOptions build() {
            return new GenerateOptions(greedy, temperature, topK, topP, minP, repeatPenalty, repeatLastN, seed, maxTokens,
                    stopStrings, chat);
        }
    }
}
