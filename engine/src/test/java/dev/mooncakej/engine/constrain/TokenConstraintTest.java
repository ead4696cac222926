package dev.mooncakej.engine.constrain;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.TestModels;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/**
 * Token-level constraint with a real tokenizer (the generated model's byte-level BPE): tokens sampled
 * at random, but only among those the constraint allows, always give text that parses and validates
 * against its schema, for 100 random schemas; and without the mask, the same sampling does not.
 */
class TokenConstraintTest {
    @Test
    void randomTokensUnderTheMaskAlwaysGiveValidJson() throws Exception {
        Tokenizer tok;
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            tok = Tokenizer.from(f);
        }
        SplittableRandom r = new SplittableRandom(7);
        int finished = 0;
        for (int i = 0; i < 100; i++) {
            JsonNode schema = RandomSchemas.schema(r, 3);
            TokenConstraint c = TokenConstraint.of(tok, JsonSchemas.compile(schema, true));
            String text = sample(tok, c, r, 600);
            if (text == null) continue; // the budget ran out: the max_tokens case, covered elsewhere
            finished++;
            if (i % 20 == 0) System.out.printf("schema %s%n  -> %s%n", schema, text);
            JsonNode v = RandomSchemas.JSON.readTree(text);
            assertThat(RandomSchemas.violation(schema, v, "#"))
                    .as("schema %s, text %s", schema, text)
                    .isNull();
        }
        System.out.printf("%d of 100 completions ended within 600 tokens%n", finished);
        assertThat(finished).as("completions that ended within 600 tokens").isGreaterThanOrEqualTo(90);
    }

    @Test
    void withoutTheMaskTheSameSamplingIsNotJson() {
        Tokenizer tok;
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            tok = Tokenizer.from(f);
        }
        SplittableRandom r = new SplittableRandom(7);
        int valid = 0;
        for (int i = 0; i < 20; i++) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            for (int n = 0; n < 20; n++) out.writeBytes(tok.tokenBytes(r.nextInt(tok.vocabSize())));
            try {
                RandomSchemas.JSON.readTree(out.toString(StandardCharsets.UTF_8));
                valid++;
            } catch (RuntimeException e) {
                // expected: random tokens are not JSON
            }
        }
        assertThat(valid).isLessThan(2);
    }

    /**
     * Steering: with a budget just above the shortest closing (what a small {@code max_tokens} gives),
     * tokens drawn uniformly among the allowed ones still end in a complete value that validates, for
     * 100 random schemas; the same draws without steering mostly run out of budget inside the value.
     */
    @Test
    void steeringClosesEveryValueWithinItsBudget() throws Exception {
        Tokenizer tok;
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            tok = Tokenizer.from(f);
        }
        int steeredValid = 0, unsteeredValid = 0;
        for (int i = 0; i < 100; i++) {
            SplittableRandom r = new SplittableRandom(1000 + i);
            JsonNode schema = RandomSchemas.schema(r, 3);
            int budget =
                    TokenConstraint.of(tok, JsonSchemas.compile(schema, true)).closing().length + 1 + r.nextInt(12);
            long seed = r.nextLong();
            String steered = draw(tok, TokenConstraint.of(tok, JsonSchemas.compile(schema, true)), seed, budget, true);
            assertThat(steered)
                    .as("schema %s, budget %d: a complete value", schema, budget)
                    .isNotNull();
            assertThat(RandomSchemas.violation(schema, RandomSchemas.JSON.readTree(steered), "#"))
                    .as("schema %s, text %s", schema, steered)
                    .isNull();
            steeredValid++;
            String free = draw(tok, TokenConstraint.of(tok, JsonSchemas.compile(schema, true)), seed, budget, false);
            if (free != null) unsteeredValid++;
        }
        System.out.printf(
                "complete within the budget: steered %d of 100, unsteered %d of 100%n", steeredValid, unsteeredValid);
        assertThat(unsteeredValid)
                .as("without steering, values cut by the budget")
                .isLessThan(60);
    }

    /**
     * {@code budget} tokens drawn uniformly among the allowed ones (seeded), steered or not: the text
     * when it is a complete value at the end of generation or of the budget, else null.
     */
    private static String draw(Tokenizer tok, TokenConstraint c, long seed, int budget, boolean steer) {
        SplittableRandom r = new SplittableRandom(seed);
        BitSet allowed = new BitSet(tok.vocabSize());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int step = 0; step < budget; step++) {
            c.allowed(allowed);
            int[] ids = allowed.stream().toArray();
            int chosen = ids[r.nextInt(ids.length)];
            if (steer) chosen = c.steer(chosen, budget - step - 1);
            assertThat(c.accept(chosen)).as("a steered token is allowed").isTrue();
            if (tok.isEndOfGeneration(chosen)) break;
            out.writeBytes(tok.tokenBytes(chosen));
        }
        return c.isComplete() ? out.toString(StandardCharsets.UTF_8) : null;
    }

    @Test
    void statesRepeatSoMasksComeFromTheCache() {
        Tokenizer tok;
        try (GgufFile f = GgufFile.open(TestModels.tiny())) {
            tok = Tokenizer.from(f);
        }
        String schema = "{\"type\":\"object\",\"properties\":{\"note\":{\"type\":\"string\"},"
                + "\"n\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}},\"required\":[\"note\",\"n\"]}";
        TokenConstraint first = TokenConstraint.of(tok, schema, true);
        String text = "{\"note\": \"a long note that goes on and on, with words\", \"n\": [1, 22, 333, 4444]}";
        for (int id : tok.encode(text)) {
            first.allowed(new BitSet());
            assertThat(first.accept(id)).isTrue();
        }
        long[] once = first.cacheCounts();
        TokenConstraint second = TokenConstraint.of(tok, schema, true); // another request, same schema
        for (int id : tok.encode(text)) {
            second.allowed(new BitSet());
            assertThat(second.accept(id)).isTrue();
        }
        long[] twice = second.cacheCounts();
        System.out.printf(
                "mask cache: first request %d hits / %d misses, both %d / %d%n", once[0], once[1], twice[0], twice[1]);
        assertThat(once[0]).as("string contents revisit one state").isPositive();
        assertThat(twice[1]).as("the second request computes no new mask").isEqualTo(once[1]);
    }

    /** Samples allowed tokens at random (closing ones favoured as the text grows); null past the budget. */
    static String sample(Tokenizer tok, TokenConstraint c, SplittableRandom r, int budget) {
        BitSet allowed = new BitSet(tok.vocabSize());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int step = 0; step < budget; step++) {
            c.allowed(allowed);
            assertThat(allowed.cardinality()).as("some token is always allowed").isPositive();
            int chosen = -1;
            for (int id = allowed.nextSetBit(0); id >= 0; id = allowed.nextSetBit(id + 1)) {
                if (tok.isEndOfGeneration(id)) chosen = id;
            }
            if (chosen < 0) {
                int[] ids = allowed.stream().toArray();
                chosen = ids[r.nextInt(ids.length)];
                if (step > 20) { // prefer tokens that close something, so most texts end within the budget
                    for (int tries = 0; tries < 8; tries++) {
                        int id = ids[r.nextInt(ids.length)];
                        String s = new String(tok.tokenBytes(id), StandardCharsets.UTF_8);
                        if (s.contains("\"") || s.contains("}") || s.contains("]")) {
                            chosen = id;
                            break;
                        }
                    }
                }
            }
            assertThat(c.accept(chosen)).as("an allowed token is accepted").isTrue();
            if (tok.isEndOfGeneration(chosen)) return out.toString(StandardCharsets.UTF_8);
            out.writeBytes(tok.tokenBytes(chosen));
        }
        return null;
    }
}
