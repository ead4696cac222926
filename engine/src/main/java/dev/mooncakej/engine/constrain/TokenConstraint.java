package dev.mooncakej.engine.constrain;

import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A JSON-schema constraint on generated tokens: {@link #allowed} says which token ids may come next
 * (each token's bytes fed to a copy of the {@link JsonMatcher}), {@link #accept} advances by the token
 * sampled. The vocabulary is held as a byte trie, so tokens sharing a prefix share the work of feeding
 * it, and a branch the automaton refuses is cut at its first byte. End-of-generation tokens are allowed
 * exactly when the text is a complete value.
 */
public final class TokenConstraint {
    private final Grammar grammar;
    private final JsonMatcher matcher;

    private TokenConstraint(Grammar grammar, JsonMatcher matcher) {
        this.grammar = grammar;
        this.matcher = matcher;
    }

    /**
     * What every request with the same schema shares: the vocabulary's trie, its end-of-generation
     * tokens, and the masks of the automaton states seen so far (a state's mask is computed once; string
     * contents, digits and array elements revisit a few states again and again).
     */
    static final class Grammar {
        static final int MAX_STATES = 256;
        final Tokenizer tokenizer;
        final Trie trie;
        final SchemaNode schema;
        final BitSet endOfGeneration;
        final int endToken;
        private final Map<Set<JsonMatcher.Stack>, BitSet> masks = new LinkedHashMap<>(64, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Set<JsonMatcher.Stack>, BitSet> e) {
                return size() > MAX_STATES;
            }
        };
        long hits, misses;

        Grammar(Tokenizer tokenizer, SchemaNode schema) {
            this.tokenizer = tokenizer;
            this.trie = TRIES.computeIfAbsent(tokenizer, Trie::of);
            this.schema = schema;
            this.endOfGeneration = new BitSet(tokenizer.vocabSize());
            for (int id = 0; id < tokenizer.vocabSize(); id++)
                if (tokenizer.isEndOfGeneration(id)) endOfGeneration.set(id);
            int eos = tokenizer.eos();
            this.endToken = eos >= 0 && endOfGeneration.get(eos) ? eos : endOfGeneration.nextSetBit(0);
        }

        /** The ids allowed after the text that brought the automaton to {@code configs} (shared: do not change). */
        BitSet allowed(Set<JsonMatcher.Stack> configs, boolean complete) {
            synchronized (masks) {
                BitSet m = masks.get(configs);
                if (m != null) {
                    hits++;
                    return m;
                }
            }
            BitSet out = new BitSet(tokenizer.vocabSize());
            if (complete) out.or(endOfGeneration);
            walk(0, configs, out);
            synchronized (masks) {
                misses++;
                masks.put(configs, out);
            }
            return out;
        }

        private void walk(int node, Set<JsonMatcher.Stack> configs, BitSet out) {
            for (int c = trie.firstChild[node]; c >= 0; c = trie.nextSibling[c]) {
                Set<JsonMatcher.Stack> next = JsonMatcher.advance(configs, trie.label[c] & 0xFF);
                if (next.isEmpty()) continue;
                for (int id : trie.tokens(c)) out.set(id);
                walk(c, next, out);
            }
        }
    }

    /** Each tokenizer's trie, built once (a 150k vocabulary takes a while). */
    private static final Map<Tokenizer, Trie> TRIES = Collections.synchronizedMap(new WeakHashMap<>());

    /** Grammars by tokenizer and schema text, the most recently used kept. */
    private static final Map<List<Object>, Grammar> GRAMMARS = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<List<Object>, Grammar> e) {
            return size() > 8;
        }
    };

    /** A constraint on {@code tokenizer}'s tokens to JSON text satisfying {@code schema}. */
    public static TokenConstraint of(Tokenizer tokenizer, SchemaNode schema) {
        return new TokenConstraint(new Grammar(tokenizer, schema), JsonMatcher.of(schema));
    }

    /**
     * As {@link #of(Tokenizer, SchemaNode)} from the schema's JSON text; refuses an unsupported schema
     * by name. Requests with the same schema share its compiled form and state masks.
     */
    public static TokenConstraint of(Tokenizer tokenizer, String schemaJson, boolean strict) {
        List<Object> key = List.of(System.identityHashCode(tokenizer), schemaJson, strict);
        Grammar g;
        synchronized (GRAMMARS) {
            g = GRAMMARS.get(key);
        }
        if (g == null || g.tokenizer != tokenizer) {
            JsonNode schema;
            try {
                schema = JSON.readTree(schemaJson);
            } catch (JacksonException e) {
                throw new IllegalArgumentException("json schema: not valid JSON: " + e.getOriginalMessage(), e);
            }
            g = new Grammar(tokenizer, JsonSchemas.compile(schema, strict));
            synchronized (GRAMMARS) {
                GRAMMARS.put(key, g);
            }
        }
        return new TokenConstraint(g, JsonMatcher.of(g.schema));
    }

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** A constraint for the next value under the same schema, sharing this one's grammar and masks. */
    public TokenConstraint restart() {
        return new TokenConstraint(grammar, JsonMatcher.of(grammar.schema));
    }

    /** Sets every logit of a token that may not come next to minus infinity ({@code logits[off .. off+vocab)}). */
    public void mask(float[] logits, int off, int vocab) {
        BitSet allowed = grammar.allowed(matcher.configs(), matcher.isComplete());
        for (int id = allowed.nextClearBit(0); id < vocab; id = allowed.nextClearBit(id + 1))
            logits[off + id] = Float.NEGATIVE_INFINITY;
    }

    /** Sets in {@code out} (cleared first) the ids that may come next. */
    public void allowed(BitSet out) {
        out.clear();
        out.or(grammar.allowed(matcher.configs(), matcher.isComplete()));
    }

    /** Advances by the sampled token; false when it is not allowed (then nothing changes). */
    public boolean accept(int id) {
        if (grammar.tokenizer.isEndOfGeneration(id)) return matcher.isComplete();
        byte[] b = grammar.tokenizer.tokenBytes(id);
        return b.length > 0 && matcher.accept(b);
    }

    /** True when the text so far is a complete value. */
    public boolean isComplete() {
        return matcher.isComplete();
    }

    /** True when some token can still follow. */
    public boolean canContinue() {
        return matcher.canContinue();
    }

    /**
     * Steering under a token budget ({@code max_tokens}): the token to emit instead of {@code sampled}
     * (drawn under {@link #mask}) when {@code left} more tokens may follow this one. The sampled token
     * stands while the value can still be closed within the budget after it; otherwise the first token
     * of the shortest way to close the value from here (an end-of-generation token when it is already
     * complete). So an answer is a complete value whenever one fits in {@code max_tokens} from the
     * start; when none fits, the output follows the shortest closing as far as it goes.
     */
    public int steer(int sampled, int left) {
        if (grammar.tokenizer.isEndOfGeneration(sampled)) return sampled;
        JsonMatcher after = matcher.copy();
        byte[] b = grammar.tokenizer.tokenBytes(sampled);
        int[] close;
        try {
            if (b.length > 0 && after.accept(b) && closingTokens(after.shortestCompletion()).length <= left)
                return sampled;
            close = closingTokens(matcher.shortestCompletion());
        } catch (IllegalStateException e) { // a vocabulary that cannot write the closing bytes: no steering
            return sampled;
        }
        if (close.length == 0) return grammar.endToken >= 0 ? grammar.endToken : sampled;
        return close[0];
    }

    /** The tokens that close the value the shortest way from here (none when it is complete). */
    public int[] closing() {
        return closingTokens(matcher.shortestCompletion());
    }

    /**
     * {@code bytes} as tokens, longest vocabulary match first (so the count is at most the byte count);
     * each token is one the mask allows in turn, since the bytes continue the value.
     */
    private int[] closingTokens(byte[] bytes) {
        Trie t = grammar.trie;
        int[] out = new int[bytes.length];
        int n = 0;
        for (int i = 0; i < bytes.length; ) {
            int node = 0, bestId = -1, bestLen = 0;
            for (int j = i; j < bytes.length; j++) {
                int c = t.firstChild[node];
                while (c >= 0 && t.label[c] != bytes[j]) c = t.nextSibling[c];
                if (c < 0) break;
                node = c;
                if (t.tokenIds[c] != null) {
                    bestId = t.tokenIds[c][0];
                    bestLen = j - i + 1;
                }
            }
            if (bestId < 0) // a byte no token starts with: cannot be written in this vocabulary
            throw new IllegalStateException("no token starts with byte " + (bytes[i] & 0xFF));
            out[n++] = bestId;
            i += bestLen;
        }
        return Arrays.copyOf(out, n);
    }

    /** Mask cache hits and misses of this constraint's schema (for tests and benchmarks). */
    long[] cacheCounts() {
        synchronized (grammar.masks) {
            return new long[] {grammar.hits, grammar.misses};
        }
    }

    /** The vocabulary's token bytes as a trie (arrays, built once per tokenizer). */
    static final class Trie {
        final int[] firstChild, nextSibling;
        final byte[] label;
        final int[][] tokenIds;

        private Trie(int[] firstChild, int[] nextSibling, byte[] label, int[][] tokenIds) {
            this.firstChild = firstChild;
            this.nextSibling = nextSibling;
            this.label = label;
            this.tokenIds = tokenIds;
        }

        int[] tokens(int node) {
            return tokenIds[node] == null ? new int[0] : tokenIds[node];
        }

        static Trie of(Tokenizer t) {
            List<int[]> children = new ArrayList<>(); // per node: {firstChild, nextSibling}
            List<Byte> labels = new ArrayList<>();
            List<List<Integer>> ids = new ArrayList<>();
            children.add(new int[] {-1, -1});
            labels.add((byte) 0);
            ids.add(null);
            for (int id = 0; id < t.vocabSize(); id++) {
                int type = t.tokenType(id);
                if (type == Tokenizer.TYPE_CONTROL || type == Tokenizer.TYPE_UNUSED) continue;
                byte[] b = t.tokenBytes(id);
                if (b.length == 0) continue;
                int node = 0;
                for (byte x : b) {
                    int c = children.get(node)[0];
                    while (c >= 0 && labels.get(c) != x) c = children.get(c)[1];
                    if (c < 0) {
                        c = children.size();
                        children.add(new int[] {-1, children.get(node)[0]});
                        labels.add(x);
                        ids.add(null);
                        children.get(node)[0] = c;
                    }
                    node = c;
                }
                if (ids.get(node) == null) ids.set(node, new ArrayList<>());
                ids.get(node).add(id);
            }
            int n = children.size();
            int[] first = new int[n], next = new int[n];
            byte[] label = new byte[n];
            int[][] tok = new int[n][];
            for (int i = 0; i < n; i++) {
                first[i] = children.get(i)[0];
                next[i] = children.get(i)[1];
                label[i] = labels.get(i);
                if (ids.get(i) != null)
                    tok[i] = ids.get(i).stream().mapToInt(Integer::intValue).toArray();
            }
            return new Trie(first, next, label, tok);
        }
    }
}
