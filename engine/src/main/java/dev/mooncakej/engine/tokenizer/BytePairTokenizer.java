package dev.mooncakej.engine.tokenizer;

import dev.mooncakej.engine.gguf.GgufFile;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Byte-level BPE ({@code tokenizer.ggml.model = gpt2}: GPT-2, Llama 3, Qwen2, SmolLM). Text is split
 * by the pre-tokenizer regex named by {@code tokenizer.ggml.pre}, each piece's UTF-8 bytes are mapped
 * to printable characters (GPT-2's byte-to-unicode table), then adjacent symbols are merged by
 * lowest merge rank (leftmost first on ties) until no merge applies.
 */
public final class BytePairTokenizer implements Tokenizer {
    static final String GPT2_PATTERN =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    static final String LLAMA3_PATTERN =
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                    + "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String QWEN2_PATTERN =
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                    + "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    /** The {@code tokenizer.ggml.pre} values this tokenizer splits text for. */
    public static final List<String> PRE_TOKENIZERS =
            List.of("gpt-2", "default", "llama-bpe", "llama3", "smaug-bpe", "qwen2", "deepseek-llm", "smollm");

    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        Arrays.fill(CHAR_TO_BYTE, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + n++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private final Vocabulary vocab;
    private final Map<String, Integer> mergeRanks;
    private final Pattern pretokenizer;
    /** {@code smollm}: every digit is a piece of its own before the pattern splits the rest. */
    private final boolean isolateDigits;

    private final byte[][] tokenBytes;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    BytePairTokenizer(Vocabulary vocab, String[] merges, GgufFile f) {
        this.vocab = vocab;
        this.mergeRanks = new HashMap<>(merges.length * 2);
        for (int i = 0; i < merges.length; i++) {
            String m = merges[i];
            int sp = m.indexOf(' ', 1);
            if (sp <= 0 || sp == m.length() - 1) {
                throw f.bad(
                        "tokenizer.ggml.merges[" + i + "]",
                        "expected two symbols separated by one space, found '" + m + "'");
            }
            mergeRanks.putIfAbsent(m, i);
        }
        String pre = f.has("tokenizer.ggml.pre") ? f.getString("tokenizer.ggml.pre") : "gpt-2";
        this.pretokenizer = Pattern.compile(
                switch (pre) {
                    case "llama-bpe", "llama3", "smaug-bpe" -> LLAMA3_PATTERN;
                    case "qwen2", "deepseek-llm" -> QWEN2_PATTERN;
                    case "gpt-2", "gpt2", "default", "smollm" -> GPT2_PATTERN;
                    default ->
                        throw f.bad(
                                "tokenizer.ggml.pre",
                                "pre-tokenizer '" + pre + "' is not supported; expected one of " + PRE_TOKENIZERS);
                },
                Pattern.UNICODE_CHARACTER_CLASS);
        this.isolateDigits = pre.equals("smollm");
        this.tokenBytes = new byte[vocab.tokens.length][];
        for (int i = 0; i < vocab.tokens.length; i++) tokenBytes[i] = bytesOf(i);
    }

    private byte[] bytesOf(int id) {
        int type = vocab.types[id];
        String s = vocab.tokens[id];
        if (type == TYPE_CONTROL) return new byte[0];
        if (type == TYPE_USER_DEFINED) return s.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            int b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
            if (b >= 0) out.write(b);
            else out.writeBytes(String.valueOf(c).getBytes(StandardCharsets.UTF_8));
        }
        return out.toByteArray();
    }

    /** GPT-2's printable form of raw bytes. */
    public static String encodeBytes(byte[] bytes) {
        StringBuilder sb = new StringBuilder(bytes.length);
        for (byte b : bytes) sb.append(BYTE_TO_CHAR[b & 0xFF]);
        return sb.toString();
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
        for (int i = 0; i < parts.size(); i++) {
            if (parts.get(i)[0] >= 0) out.add(parts.get(i)[0]);
            else encodePlain(plain.get(i), out);
        }
        return out.toArray();
    }

    /**
     * The longest pre-token piece merged as one (BPE is quadratic in a piece's length): a longer one,
     * which no natural text has (a word of 256 characters), is merged in runs of this many characters,
     * so a prompt of one enormous "word" costs linear time instead of hours.
     */
    static final int MAX_PIECE_CHARS = 256;

    private void encodePlain(String text, IntList out) {
        if (!isolateDigits) {
            encodePieces(text, out);
            return;
        }
        int run = 0; // start of the current run of non-digits
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            int next = i + Character.charCount(cp);
            if (Character.isDigit(cp)
                    || Character.getType(cp) == Character.LETTER_NUMBER
                    || Character.getType(cp) == Character.OTHER_NUMBER) {
                if (i > run) encodePieces(text.substring(run, i), out);
                encodePieces(text.substring(i, next), out);
                run = next;
            }
            i = next;
        }
        if (run < text.length()) encodePieces(text.substring(run), out);
    }

    private void encodePieces(String text, IntList out) {
        Matcher m = pretokenizer.matcher(text);
        while (m.find()) {
            String piece = m.group();
            if (piece.length() > MAX_PIECE_CHARS) {
                for (int from = 0; from < piece.length(); ) {
                    int to = Math.min(piece.length(), from + MAX_PIECE_CHARS);
                    if (to < piece.length() && Character.isHighSurrogate(piece.charAt(to - 1)))
                        to--; // whole code points
                    out.addAll(bpe(encodeBytes(piece.substring(from, to).getBytes(StandardCharsets.UTF_8))));
                    from = to;
                }
                continue;
            }
            int[] ids = cache.get(piece);
            if (ids == null) {
                ids = bpe(encodeBytes(piece.getBytes(StandardCharsets.UTF_8)));
                if (cache.size() < 100_000) cache.put(piece, ids);
            }
            out.addAll(ids);
        }
    }

    private int[] bpe(String word) {
        List<String> symbols = new ArrayList<>(word.length());
        for (int i = 0; i < word.length(); i++) symbols.add(String.valueOf(word.charAt(i)));
        while (symbols.size() > 1) {
            int best = -1, bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < symbols.size(); i++) {
                Integer r = mergeRanks.get(symbols.get(i) + " " + symbols.get(i + 1));
                if (r != null && r < bestRank) {
                    bestRank = r;
                    best = i;
                }
            }
            if (best < 0) break;
            symbols.set(best, symbols.get(best) + symbols.get(best + 1));
            symbols.remove(best + 1);
        }
        IntList ids = new IntList();
        for (String s : symbols) {
            Integer id = vocab.ids.get(s);
            if (id != null) {
                ids.add(id);
                continue;
            }
            for (int i = 0; i < s.length(); i++) { // fall back to single byte-symbols
                Integer b = vocab.ids.get(String.valueOf(s.charAt(i)));
                ids.add(b != null ? b : Math.max(vocab.unknown, 0));
            }
        }
        return ids.toArray();
    }
}
