package dev.mooncakej.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Salted keys: one tenant's keys share nothing with another's or the shared space's, and are stable. */
class BlockKeysSaltTest {
    @Test
    void equalPromptsOfTwoTenantsShareNoKey() {
        BlockKeys shared = new BlockKeys("m", 2);
        int[] prompt = {1, 2, 3, 4, 5, 6};
        long[] a = shared.salted("tenant:a").keys(prompt),
                b = shared.salted("tenant:b").keys(prompt);
        long[] none = shared.keys(prompt);
        for (int i = 0; i < a.length; i++) {
            assertThat(a[i]).isNotEqualTo(b[i]).isNotEqualTo(none[i]);
        }
        assertThat(shared.salted("tenant:a").keys(prompt)).as("stable").containsExactly(a);
        assertThat(shared.salted("tenant:a").seed()).isNotEqualTo(shared.seed());
    }
}
