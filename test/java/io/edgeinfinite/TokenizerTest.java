package io.edgeinfinite;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The shared tokenizer cases, through the public Java API (vocabulary-only loading). */
class TokenizerTest {
    static final String SEPARATOR = "\n__ggml_vocab_test__\n";

    @ParameterizedTest
    @ValueSource(strings = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf"})
    void reproducesLlamaCppTokenization(String vocab) throws IOException {
        String inp = Files.readString(TestData.vocab(vocab + ".inp"), StandardCharsets.UTF_8);
        List<String> expected = Files.readAllLines(TestData.vocab(vocab + ".out"), StandardCharsets.UTF_8);
        // Texts are separated by a line holding only the marker; the newline before it belongs to the marker.
        String[] texts = inp.split(java.util.regex.Pattern.quote(SEPARATOR), -1);
        if (texts[texts.length - 1].equals("__ggml_vocab_test__\n") || texts[texts.length - 1].isEmpty()) {
            texts = Arrays.copyOf(texts, texts.length - 1);
        }
        assertEquals(expected.size(), texts.length, "case count");
        try (Model m = Model.loadVocabOnly(TestData.vocab(vocab))) {
            for (int i = 0; i < texts.length; i++) {
                int[] want = expected.get(i).isBlank() ? new int[0]
                        : Arrays.stream(expected.get(i).trim().split(" ")).mapToInt(Integer::parseInt).toArray();
                assertArrayEquals(want, m.tokenize(texts[i], false, false), vocab + " case " + i + ": '" + texts[i] + "'");
            }
        }
    }
}
