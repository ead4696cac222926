package dev.mooncakej.engine.tokenizer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.gguf.GgufWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

class TokenizerTest {
    @TempDir
    Path dir;

    @Test
    void bytePairRoundTripsRandomUnicodeExactly() {
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            assertRoundTrips(Tokenizer.from(f), ALPHABET + "\u2581");
        }
    }

    /** A hang guard, not a speed target: merged whole, such a piece would take hours. */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aPromptOfOneEnormousWordIsTokenizedInRunsAndStillRoundTrips() {
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            Tokenizer t = Tokenizer.from(f);
            StringBuilder sb = new StringBuilder();
            Random rnd = new Random(3);
            while (sb.length() < 200_000) sb.append((char) ('a' + rnd.nextInt(26))); // letters only: one piece
            String word = sb.toString();
            int[] ids = t.encode(word);
            assertThat(t.decode(ids)).isEqualTo(word);
            assertThat(ids.length).isLessThanOrEqualTo(word.length());
        }
    }

    private static final String ALPHABET = "abcxyzABC 0123 \t\n.,;'\"!?éüß日本語€🙂<>|";

    @Test
    void sentencePieceRoundTripsRandomUnicodeExactly() {
        Path p = dir.resolve("spm.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY).withTokenizer("llama"), p);
        try (GgufFile f = GgufFile.open(p)) {
            Tokenizer t = Tokenizer.from(f);
            assertThat(t).isInstanceOf(SentencePieceTokenizer.class);
            // SentencePiece writes spaces as U+2581, so a literal U+2581 in the text decodes as a space
            // (the same in SentencePiece itself and llama.cpp): it is left out of this alphabet.
            assertRoundTrips(t, ALPHABET);
            assertThat(t.addBos()).isTrue();
        }
    }

    /**
     * SentencePiece merges a long prompt in runs cut at word starts, so the merge work and memory are
     * bounded per run; natural text tokenizes exactly as it would merged whole, and a run without any
     * word start is cut at the limit and still round-trips.
     */
    @Test
    void sentencePieceMergesALongPromptInRunsCutAtWordStarts() {
        Path p = dir.resolve("spm-long.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY).withTokenizer("llama"), p);
        try (GgufFile f = GgufFile.open(p)) {
            SentencePieceTokenizer t = (SentencePieceTokenizer) Tokenizer.from(f);
            Random rnd = new Random(5);
            StringBuilder sb = new StringBuilder();
            while (sb.length() < 5 * SentencePieceTokenizer.MAX_RUN_CHARS) {
                for (int k = 1 + rnd.nextInt(9); k > 0; k--) sb.append((char) ('a' + rnd.nextInt(26)));
                sb.append(rnd.nextInt(10) == 0 ? ".  " : " ");
            }
            String text = sb.toString();
            List<String> runs =
                    SentencePieceTokenizer.runs(text.replace(' ', '\u2581'), SentencePieceTokenizer.MAX_RUN_CHARS);
            assertThat(runs).hasSizeGreaterThan(4);
            assertThat(String.join("", runs)).isEqualTo(text.replace(' ', '\u2581'));
            for (String r : runs) assertThat(r.length()).isLessThanOrEqualTo(SentencePieceTokenizer.MAX_RUN_CHARS);
            for (String r : runs.subList(1, runs.size())) assertThat(r).startsWith("\u2581"); // each starts a word
            assertThat(t.encode(text)).isEqualTo(t.encodeAsOneRun(text));
            assertThat(t.decode(t.encode(text))).isEqualTo(text);

            String word = "x".repeat(3 * SentencePieceTokenizer.MAX_RUN_CHARS + 7) + "🙂".repeat(3000);
            assertThat(SentencePieceTokenizer.runs(word, SentencePieceTokenizer.MAX_RUN_CHARS))
                    .allSatisfy(r -> assertThat(r.length()).isLessThanOrEqualTo(SentencePieceTokenizer.MAX_RUN_CHARS))
                    .allSatisfy(r ->
                            assertThat(Character.isLowSurrogate(r.charAt(0))).isFalse());
            assertThat(t.decode(t.encode(word))).isEqualTo(word);
        }
    }

    private static void assertRoundTrips(Tokenizer t, String alphabet) {
        Random rnd = new Random(99);
        for (int i = 0; i < 300; i++) {
            StringBuilder sb = new StringBuilder();
            int n = 1 + rnd.nextInt(40);
            for (int k = 0; k < n; k++)
                sb.appendCodePoint(alphabet.codePointAt(
                        alphabet.offsetByCodePoints(0, rnd.nextInt(alphabet.codePointCount(0, alphabet.length())))));
            String s = sb.toString();
            assertThat(t.decode(t.encode(s))).as("round trip of %s", s).isEqualTo(s);
        }
    }

    @Test
    void specialTokensAreParsedOnlyWhenAsked() {
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            Tokenizer t = Tokenizer.from(f);
            int imStart = Arrays.asList(f.getArray("tokenizer.ggml.tokens", String[].class))
                    .indexOf("<|im_start|>");
            int[] parsed = t.encodeWithSpecials("<|im_start|>user\nhi");
            assertThat(parsed[0]).isEqualTo(imStart);
            assertThat(t.tokenType(imStart)).isEqualTo(Tokenizer.TYPE_CONTROL);
            assertThat(t.encode("<|im_start|>")).doesNotContain(imStart);
            assertThat(t.tokenBytes(imStart)).isEmpty();
            assertThat(t.isEndOfGeneration(t.eos())).isTrue();
        }
    }

    @Test
    void chatTemplateRendersChatMlWithJinjava() {
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            ChatTemplate tpl = new ChatTemplate(f.getString("tokenizer.chat_template"), "", "<|endoftext|>");
            String out = tpl.render(
                    List.of(new ChatTemplate.Message("system", "Be brief."), new ChatTemplate.Message("user", "Hi")),
                    true);
            assertThat(out)
                    .isEqualTo("<|im_start|>system\nBe "
                            + "brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
            assertThat(tpl.render(List.of(new ChatTemplate.Message("user", "Hi")), false))
                    .isEqualTo("<|im_start|>user\nHi<|im_end|>\n");
        }
    }

    @Test
    void realWorldTemplateFeaturesRender() {
        // Llama-2 style: bos_token, conditionals on roles, loop.first, strip filter, trim_blocks
        String tpl =
                "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] | trim }} "
                        + "[/INST]"
                        + "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor "
                        + "%}";
        ChatTemplate t = new ChatTemplate(tpl, "<s>", "</s>");
        assertThat(t.render(
                        List.of(
                                new ChatTemplate.Message("user", "  hi "),
                                new ChatTemplate.Message("assistant", "yo"),
                                new ChatTemplate.Message("user", "again")),
                        true))
                .isEqualTo("<s>[INST] hi [/INST] yo</s>[INST] again [/INST]");
    }

    @Test
    void brokenTemplateFailsWithTheReason() {
        ChatTemplate t = new ChatTemplate("{% for m in messages %}{{ m['content'] }", "", "");
        assertThatThrownBy(() -> t.render(List.of(new ChatTemplate.Message("user", "x")), true))
                .hasMessageContaining("chat template");
    }

    @Test
    void unknownTokenizerModelIsNamed() {
        Path p = dir.resolve("wp.gguf");
        new GgufWriter()
                .putString("tokenizer.ggml.model", "bert")
                .putStrings("tokenizer.ggml.tokens", new String[] {"a"})
                .write(p);
        try (GgufFile f = GgufFile.open(p)) {
            assertThatThrownBy(() -> Tokenizer.from(f))
                    .hasMessageContaining("tokenizer.ggml.model")
                    .hasMessageContaining("bert")
                    .hasMessageContaining("gpt2");
        }
    }
}
