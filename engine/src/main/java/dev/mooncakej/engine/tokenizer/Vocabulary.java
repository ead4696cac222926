package dev.mooncakej.engine.tokenizer;

import dev.mooncakej.engine.gguf.GgufFile;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

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
    /** Control and user-defined token strings, longest first, for splitting text around them. */
    final List<String> specials;

    private Vocabulary(
            String[] tokens, int[] types, float[] scores, int bos, int eos, int eot, int unknown, boolean addBos) {
        this.tokens = tokens;
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
            if ((types[i] == Tokenizer.TYPE_CONTROL || types[i] == Tokenizer.TYPE_USER_DEFINED) && !tokens[i].isEmpty())
                sp.add(tokens[i]);
        }
        sp.sort(Comparator.comparingInt(String::length).reversed());
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
        return id >= 0 && (id == eos || id == eot);
    }

    /** Splits text into runs of plain text (id -1) and special tokens (their id), longest match first. */
    List<int[]> splitSpecials(String text, List<String> plainOut) {
        List<int[]> parts = new ArrayList<>();
        int start = 0, i = 0;
        outer:
        while (i < text.length()) {
            for (String s : specials) {
                if (text.startsWith(s, i)) {
                    if (i > start) {
                        plainOut.add(text.substring(start, i));
                        parts.add(new int[] {-1});
                    }
                    plainOut.add(null);
                    parts.add(new int[] {ids.get(s)});
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
