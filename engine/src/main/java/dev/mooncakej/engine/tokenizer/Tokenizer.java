package dev.mooncakej.engine.tokenizer;

import dev.mooncakej.engine.gguf.GgufFile;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Text to token ids and back, built from a GGUF file's {@code tokenizer.ggml.*} metadata.
 * {@link #decode} of {@link #encode} gives back the text exactly.
 */
public interface Tokenizer {
    int TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4, TYPE_UNUSED = 5, TYPE_BYTE = 6;

    int vocabSize();

    /**
     * Token ids of {@code text}; no BOS. Control-token strings in it are plain text; a user-defined
     * token's string (an added token not marked special) becomes its id, as llama.cpp and Hugging Face
     * tokenize it.
     */
    int[] encode(String text);

    /** As {@link #encode}, but control (and unknown) token strings in the text become their ids too
     *  (what a rendered chat template needs). */
    int[] encodeWithSpecials(String text);

    /** The raw bytes a token stands for (empty for control tokens). Concatenate and decode as UTF-8. */
    byte[] tokenBytes(int id);

    /** The token's vocabulary string as stored in the file. */
    String tokenText(int id);

    int tokenType(int id);

    /** Beginning-of-sequence id, or -1. */
    int bos();

    /** End-of-sequence id, or -1. */
    int eos();

    /** Whether prompts start with {@link #bos()} ({@code tokenizer.ggml.add_bos_token}). */
    boolean addBos();

    /** True when the id ends generation (EOS, end-of-turn or another end-of-generation token). */
    boolean isEndOfGeneration(int id);

    default String decode(int[] ids) {
        return decode(ids, 0, ids.length);
    }

    default String decode(int[] ids, int from, int to) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = from; i < to; i++) out.writeBytes(tokenBytes(ids[i]));
        return out.toString(StandardCharsets.UTF_8);
    }

    /** The tokenizer this GGUF file describes: {@code gpt2} (byte-level BPE) or {@code llama} (SentencePiece). */
    static Tokenizer from(GgufFile f) {
        String model = f.getString("tokenizer.ggml.model");
        return switch (model) {
            case "gpt2" ->
                new BytePairTokenizer(Vocabulary.from(f), f.getArray("tokenizer.ggml.merges", String[].class), f);
            case "llama" -> new SentencePieceTokenizer(Vocabulary.from(f), f);
            default ->
                throw f.bad(
                        "tokenizer.ggml.model",
                        "tokenizer '" + model
                                + "' is not supported; expected 'gpt2' (byte-level BPE) or 'llama' (SentencePiece)");
        };
    }
}
