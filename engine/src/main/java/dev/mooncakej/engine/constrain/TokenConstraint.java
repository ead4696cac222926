package dev.mooncakej.engine.constrain;

import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collections;
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
    private final Tokenizer tokenizer;
    private final Trie trie;
    private final JsonMatcher matcher;
    private final BitSet endOfGeneration;

    private TokenConstraint(Tokenizer tokenizer, Trie trie, JsonMatcher matcher) {
        this.tokenizer = tokenizer;
        this.trie = trie;
        this.matcher = matcher;
        this.endOfGeneration = new BitSet(tokenizer.vocabSize());
        for (int id = 0; id < tokenizer.vocabSize(); id++) if (tokenizer.isEndOfGeneration(id)) endOfGeneration.set(id);
    }

    /** Each tokenizer's trie, built once (a 150k vocabulary takes a while). */
    private static final Map<Tokenizer, Trie> TRIES = Collections.synchronizedMap(new WeakHashMap<>());

    private final BitSet scratch = new BitSet();

    /** A constraint on {@code tokenizer}'s tokens to JSON text satisfying {@code schema}. */
    public static TokenConstraint of(Tokenizer tokenizer, SchemaNode schema) {
        return new TokenConstraint(tokenizer, TRIES.computeIfAbsent(tokenizer, Trie::of), JsonMatcher.of(schema));
    }

    /** As {@link #of(Tokenizer, SchemaNode)} from the schema's JSON text; refuses an unsupported schema by name. */
    public static TokenConstraint of(Tokenizer tokenizer, String schemaJson, boolean strict) {
        JsonNode schema;
        try {
            schema = JSON.readTree(schemaJson);
        } catch (JacksonException e) {
            throw new IllegalArgumentException("json schema: not valid JSON: " + e.getOriginalMessage(), e);
        }
        return of(tokenizer, JsonSchemas.compile(schema, strict));
    }

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Sets every logit of a token that may not come next to minus infinity ({@code logits[off .. off+vocab)}). */
    public void mask(float[] logits, int off, int vocab) {
        allowed(scratch);
        for (int id = scratch.nextClearBit(0); id < vocab; id = scratch.nextClearBit(id + 1))
            logits[off + id] = Float.NEGATIVE_INFINITY;
    }

    /** Sets in {@code out} (cleared first) the ids that may come next. */
    public void allowed(BitSet out) {
        out.clear();
        if (matcher.isComplete()) out.or(endOfGeneration);
        walk(0, matcher.configs(), out);
    }

    private void walk(int node, Set<JsonMatcher.Stack> configs, BitSet out) {
        for (int c = trie.firstChild[node]; c >= 0; c = trie.nextSibling[c]) {
            Set<JsonMatcher.Stack> next = JsonMatcher.advance(configs, trie.label[c] & 0xFF);
            if (next.isEmpty()) continue;
            for (int id : trie.tokens(c)) out.set(id);
            walk(c, next, out);
        }
    }

    /** Advances by the sampled token; false when it is not allowed (then nothing changes). */
    public boolean accept(int id) {
        if (tokenizer.isEndOfGeneration(id)) return matcher.isComplete();
        byte[] b = tokenizer.tokenBytes(id);
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
