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
