package dev.mooncakej.engine.tokenizer;

import dev.mooncakej.engine.gguf.GgufFile;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;

/**
 * SentencePiece-style tokenizer ({@code tokenizer.ggml.model = llama}: Llama 2, TinyLlama, Mistral).
 * Spaces become {@code ▁} (with a leading one when {@code add_space_prefix}), the text is split into
 * characters, adjacent symbols are merged while the merged string is a token, highest score first
 * (leftmost on ties), and what is left unknown falls back to byte tokens {@code <0xXX>}.
 */
public final class SentencePieceTokenizer implements Tokenizer {
    private static final char SPACE = '\u2581';

    private final Vocabulary vocab;
    private final boolean addSpacePrefix;
    private final int[] byteTokens = new int[256];
    private final byte[][] tokenBytes;

    SentencePieceTokenizer(Vocabulary vocab, GgufFile f) {
        this.vocab = vocab;
        this.addSpacePrefix = !f.has("tokenizer.ggml.add_space_prefix")
                || (Boolean) f.metadata().get("tokenizer.ggml.add_space_prefix");
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.ids.get(String.format("<0x%02X>", b));
            byteTokens[b] = id == null ? -1 : id;
        }
        this.tokenBytes = new byte[vocab.tokens.length][];
        for (int i = 0; i < vocab.tokens.length; i++) tokenBytes[i] = bytesOf(i);
    }

    private byte[] bytesOf(int id) {
        String s = vocab.tokens[id];
        return switch (vocab.types[id]) {
            case TYPE_CONTROL, TYPE_UNKNOWN -> new byte[0];
            case TYPE_BYTE -> new byte[] {(byte) Integer.parseInt(s.substring(3, 5), 16)};
            default -> s.replace(SPACE, ' ').getBytes(StandardCharsets.UTF_8);
        };
    }

    @Override
    public int vocabSize() {
        return vocab.tokens.length;
    }

    @Override
    public byte[] tokenBytes(int id) {
        return tokenBytes[id];
    }

    @Override
    public String tokenText(int id) {
        return vocab.tokens[id];
    }

    @Override
    public int tokenType(int id) {
        return vocab.types[id];
    }

    @Override
    public int bos() {
        return vocab.bos;
    }

    @Override
    public int eos() {
        return vocab.eos;
    }

    @Override
    public boolean addBos() {
        return vocab.addBos;
    }

    @Override
    public boolean isEndOfGeneration(int id) {
        return vocab.isEndOfGeneration(id);
    }

    @Override
    public String decode(int[] ids, int from, int to) {
        String s = Tokenizer.super.decode(ids, from, to);
        return addSpacePrefix && from == 0 && s.startsWith(" ") ? s.substring(1) : s;
    }

    @Override
    public int[] encode(String text) {
        return encode(text, false);
    }

    @Override
    public int[] encodeWithSpecials(String text) {
        return encode(text, true);
    }

    private int[] encode(String text, boolean parseControl) {
        IntList out = new IntList();
        List<String> plain = new ArrayList<>();
        List<int[]> parts = vocab.splitSpecials(text, plain, parseControl);
        boolean prevSpecial = true;
        for (int i = 0; i < parts.size(); i++) {
            if (parts.get(i)[0] >= 0) {
                out.add(parts.get(i)[0]);
                prevSpecial = true;
                continue;
            }
            encodeFragment(addSpacePrefix && prevSpecial ? " " + plain.get(i) : plain.get(i), out);
            prevSpecial = false;
        }
        return out.toArray();
    }

    private record Bigram(int left, int right, float score, int size) {}

    /**
     * The longest run of text merged as one: SentencePiece has no pre-tokenizer, so a whole prompt
     * would be one merge problem (its symbol list and bigram queue as large as the prompt). Longer
     * text is merged in runs of at most this many chars, cut where a word starts (before a space
     * that follows a non-space, where no vocabulary token spans), or hard at the limit for a run with
     * no word start (which no natural text has).
     */
    static final int MAX_RUN_CHARS = 4096;

    private void encodeFragment(String fragment, IntList out) {
        String text = fragment.replace(' ', SPACE);
        for (String run : runs(text, MAX_RUN_CHARS)) mergeRun(run, out);
    }

    /** {@code text} cut into runs of at most {@code max} chars, at word starts where there is one. */
    static List<String> runs(String text, int max) {
        if (text.length() <= max) return List.of(text);
        List<String> runs = new ArrayList<>();
        int from = 0;
        while (text.length() - from > max) {
            int cut = -1;
            for (int i = from + max; i > from; i--)
                if (text.charAt(i) == SPACE && text.charAt(i - 1) != SPACE) {
                    cut = i;
                    break;
                }
            if (cut < 0) {
                cut = from + max;
                if (Character.isHighSurrogate(text.charAt(cut - 1))) cut--; // whole code points
            }
            runs.add(text.substring(from, cut));
            from = cut;
        }
        runs.add(text.substring(from));
        return runs;
    }

    /** Encodes {@code text} (spaces already as U+2581) as one merge problem, for tests of the run limit. */
    int[] encodeAsOneRun(String text) {
        IntList out = new IntList();
        mergeRun((addSpacePrefix ? " " + text : text).replace(' ', SPACE), out);
        return out.toArray();
    }

    private void mergeRun(String text, IntList out) {
        // symbols as a linked list over code points
        List<String> sym = new ArrayList<>();
        text.codePoints().forEach(cp -> sym.add(new String(Character.toChars(cp))));
        int n = sym.size();
        String[] s = sym.toArray(new String[0]);
        int[] prev = new int[n], next = new int[n];
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        PriorityQueue<Bigram> queue = new PriorityQueue<>(
                (a, b) -> a.score != b.score ? Float.compare(b.score, a.score) : Integer.compare(a.left, b.left));
        for (int i = 1; i < n; i++) addBigram(queue, s, i - 1, i);
        while (!queue.isEmpty()) {
            Bigram bg = queue.poll();
            if (s[bg.left] == null || s[bg.right] == null || s[bg.left].length() + s[bg.right].length() != bg.size)
                continue;
            s[bg.left] = s[bg.left] + s[bg.right];
            s[bg.right] = null;
            next[bg.left] = next[bg.right];
            if (next[bg.right] >= 0) prev[next[bg.right]] = bg.left;
            if (prev[bg.left] >= 0) addBigram(queue, s, prev[bg.left], bg.left);
            if (next[bg.left] >= 0) addBigram(queue, s, bg.left, next[bg.left]);
        }
        for (int i = 0; i >= 0 && i < n; i = next[i]) {
            Integer id = vocab.ids.get(s[i]);
            if (id != null) {
                out.add(id);
                continue;
            }
            for (byte b : s[i].getBytes(StandardCharsets.UTF_8)) {
                int bt = byteTokens[b & 0xFF];
                out.add(bt >= 0 ? bt : Math.max(vocab.unknown, 0));
            }
        }
    }

    private void addBigram(PriorityQueue<Bigram> q, String[] s, int left, int right) {
        if (left < 0 || right < 0 || s[left] == null || s[right] == null) return;
        String merged = s[left] + s[right];
        Integer id = vocab.ids.get(merged);
        if (id == null) return;
        q.add(new Bigram(left, right, vocab.scores[id], merged.length()));
    }
}
