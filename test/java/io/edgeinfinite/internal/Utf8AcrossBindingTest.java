package io.edgeinfinite.internal;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.edgeinfinite.ChatMessage;
import io.edgeinfinite.Model;
import io.edgeinfinite.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Text that is not ASCII crosses the boundary intact, both ways, under the binding in use:
 * paths, chat contents, token text (the JNI glue converts with UTF-8 explicitly, not with
 * the JVM's default charset, which is ASCII on a JDK 17 in a C locale).
 */
class Utf8AcrossBindingTest {
    private static final String TEXT = "Grüße, 世界! café 🙂";

    @Test
    void nonAsciiPathLoads(@TempDir Path dir) throws IOException {
        Path copy = Files.createDirectories(dir.resolve("modèle-世界")).resolve("tiny 🙂.gguf");
        Files.copy(TestData.model("tiny-llama-q8_0.gguf"), copy);
        try (Model m = Model.load(copy)) {
            assertTrue(m.vocabSize() > 0);
        }
    }

    @Test
    void tokensRoundTrip() {
        for (String name : List.of("tiny-llama-q8_0.gguf", "tiny-qwen2-q8_0.gguf")) {
            try (Model m = Model.load(TestData.model(name))) {
                // More tokens than bytes here (byte fallback of the space prefix): the binding asks again.
                int[] ids = m.tokenize(TEXT, false, false);
                assertTrue(ids.length > 0, name);
                // A space that fell back to bytes decodes as U+2581 itself: the tokenizer's way, not the binding's.
                String back = m.detokenize(ids).replace('\u2581', ' ').strip();
                assertTrue(back.equals(TEXT), name + ": " + back);
            }
        }
    }

    @Test
    void chatContentRoundTrips() {
        try (Model m = Model.load(TestData.model("tiny-llama-q8_0.gguf"))) {
            String chat = m.formatChat(List.of(ChatMessage.user(TEXT)), true, "chatml");
            assertTrue(chat.contains("user\n" + TEXT), chat);
            assertTrue(List.of(Native.binding().chatStops("chatml")).contains("<|im_end|>"));
        }
    }
}
