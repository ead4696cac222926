package dev.mooncakej.engine.tokenizer;

import dev.mooncakej.engine.gguf.GgufFile;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Token strings, types, scores and special ids from {@code tokenizer.ggml.*}. */
final class Vocabulary {
    final String[] tokens;
    final int[] types;
    final float[] scores;
    final Map<String, Integer> ids;
    final int bos;
    final int eos;
    final int eot;
    final int unknown;
    final boolean addBos;
    /** Control, user-defined and unknown token strings, longest first, for splitting text around them. */
    final List<String> specials;
    /** The first chars of {@link #specials}: text positions starting with another char are skipped. */
    private final BitSet firstChars = new BitSet(1 << 16);

    /**
     * Token texts llama.cpp's loader treats as ending generation whatever the file says, and types as
     * control tokens when the file has them as normal text (Qwen3's vocabulary has {@code </s>} and
     * {@code <|endoftext|>} as plain tokens): end-of-turn and end-of-text markers of the model families
     * it knows. Done the same here so that text tokenizes as llama.cpp tokenizes it and generation
     * stops where it stops.
     */
    static final Set<String> END_OF_GENERATION_TEXTS = Set.of(
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<|return|>",
            "<|call|>",
            "<|flush|>",
            "<|calls|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|eom_id|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "[EOS]",
            "<eos>",
            "<turn|>",
            "<|end_of_text|>",
            "<end_of_utterance>",
            "</s>",
            "<|tool_response>");

    /** Ids that end generation: EOS, EOT and every {@link #END_OF_GENERATION_TEXTS} token. */
    private final BitSet endOfGeneration = new BitSet();

    private Vocabulary(
            String[] tokens, int[] fileTypes, float[] scores, int bos, int eos, int eot, int unknown, boolean addBos) {
        this.tokens = tokens;
        int[] types = fileTypes.clone();
        for (int i = 0; i < tokens.length; i++) {
            if (END_OF_GENERATION_TEXTS.contains(tokens[i])) {
                endOfGeneration.set(i);
                if (types[i] == Tokenizer.TYPE_NORMAL || types[i] == Tokenizer.TYPE_USER_DEFINED)
                    types[i] = Tokenizer.TYPE_CONTROL;
            }
        }
        if (eos >= 0) endOfGeneration.set(eos);
        if (eot >= 0) endOfGeneration.set(eot);
        this.types = types;
        this.scores = scores;
        this.ids = new HashMap<>(tokens.length * 2);
        for (int i = 0; i < tokens.length; i++) ids.putIfAbsent(tokens[i], i);
        this.bos = bos;
        this.eos = eos;
        this.eot = eot;
        this.unknown = unknown;
        this.addBos = addBos;
        List<String> sp = new ArrayList<>();
        for (int i = 0; i < tokens.length; i++) {
            boolean special = types[i] == Tokenizer.TYPE_CONTROL
                    || types[i] == Tokenizer.TYPE_USER_DEFINED
                    || types[i] == Tokenizer.TYPE_UNKNOWN;
            if (special && !tokens[i].isEmpty()) sp.add(tokens[i]);
        }
        sp.sort(Comparator.comparingInt(String::length).reversed());
        for (String t : sp) firstChars.set(t.charAt(0));
        this.specials = List.copyOf(sp);
    }

    static Vocabulary from(GgufFile f) {
        String[] tokens = f.getArray("tokenizer.ggml.tokens", String[].class);
        if (tokens.length == 0) throw f.bad("tokenizer.ggml.tokens", "expected a non-empty array of token strings");
        int[] types;
        if (f.has("tokenizer.ggml.token_type")) {
            types = f.getArray("tokenizer.ggml.token_type", int[].class);
            if (types.length != tokens.length) {
                throw f.bad(
                        "tokenizer.ggml.token_type",
                        "expected " + tokens.length + " entries (one per token), found " + types.length);
            }
        } else {
            types = new int[tokens.length];
            Arrays.fill(types, Tokenizer.TYPE_NORMAL);
        }
        float[] scores = f.has("tokenizer.ggml.scores")
                ? f.getArray("tokenizer.ggml.scores", float[].class)
                : new float[tokens.length];
        if (scores.length != tokens.length) {
            throw f.bad(
                    "tokenizer.ggml.scores",
                    "expected " + tokens.length + " entries (one per token), found " + scores.length);
        }
        int bos = special(f, "tokenizer.ggml.bos_token_id", tokens.length);
        int eos = special(f, "tokenizer.ggml.eos_token_id", tokens.length);
        int eot = special(f, "tokenizer.ggml.eot_token_id", tokens.length);
        int unk = special(f, "tokenizer.ggml.unknown_token_id", tokens.length);
        boolean addBos = f.has("tokenizer.ggml.add_bos_token")
                ? (Boolean) f.metadata().get("tokenizer.ggml.add_bos_token")
                : false;
        return new Vocabulary(tokens, types, scores, bos, eos, eot, unk, addBos);
    }

    private static int special(GgufFile f, String key, int vocab) {
        return f.has(key) ? f.getInt(key, 0, vocab - 1) : -1;
    }

    boolean isEndOfGeneration(int id) {
        return id >= 0 && endOfGeneration.get(id);
    }

    /**
     * Splits text into runs of plain text (id -1) and special tokens (their id), longest match first, as
     * llama.cpp partitions it: user-defined tokens (a model's added tokens not marked special, such as
     * Qwen3's {@code <think>}) always, control and unknown tokens only when {@code parseControl}.
     */
    List<int[]> splitSpecials(String text, List<String> plainOut, boolean parseControl) {
        List<int[]> parts = new ArrayList<>();
        int start = 0, i = 0;
        outer:
        while (i < text.length()) {
            if (!firstChars.get(text.charAt(i))) {
                i++;
                continue;
            }
            for (String s : specials) {
                if (text.startsWith(s, i)) {
                    int id = ids.get(s);
                    if (!parseControl && types[id] != Tokenizer.TYPE_USER_DEFINED) continue;
                    if (i > start) {
                        plainOut.add(text.substring(start, i));
                        parts.add(new int[] {-1});
                    }
                    plainOut.add(null);
                    parts.add(new int[] {id});
                    i += s.length();
                    start = i;
                    continue outer;
                }
            }
            i++;
        }
        if (start < text.length()) {
            plainOut.add(text.substring(start));
            parts.add(new int[] {-1});
        }
        return parts;
    }
}
