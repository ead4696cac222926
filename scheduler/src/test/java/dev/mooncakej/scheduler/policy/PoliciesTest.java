package dev.mooncakej.scheduler.policy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.PrefillPolicy;
import dev.mooncakej.scheduler.admission.PredictiveEarlyRejection;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Each policy is its own class made by name, and chooses as docs/SCHEDULING.md says on a small cluster. */
class PoliciesTest {
    /**
     * Three instances: 0 idle with no prefix, 1 queued 2 s holding 8 blocks, 2 queued 0.5 s holding 2;
     * the pool holds 10 blocks. Prefill: 1 s minus 0.05 s per cached block; transfer 0.01 s per block.
     */
    private static final class Cluster implements PrefillView {
        final double[] queue = {0, 2, 0.5};
        final int[] local = {0, 8, 2};
        int draws;

        public int count() {
            return 3;
        }

        public int instance(int k) {
            return k;
        }

        public double queueSeconds(int i) {
            return queue[i];
        }

        public int localBlocks(int i) {
            return local[i];
        }

        public double prefillSeconds(int cachedBlocks) {
            return 1 - 0.05 * cachedBlocks;
        }

        public int bestBlocks() {
            return 10;
        }

        public int bestHolder() {
            return 63; // the pool
        }

        public double transferSeconds(int blocks, int from, int to) {
            return 0.01 * blocks;
        }

        public double balancingThreshold() {
            return 1;
        }

        public int nextInt(int bound) {
            return draws++ % bound;
        }
    }

    private static PrefillChoice choose(PrefillPolicy p) {
        PrefillChoice c = new PrefillChoice();
        p.create().choose(new Cluster(), c);
        return c;
    }

    @Test
    void everyPolicyIsItsOwnClassMadeByName() {
        Set<Class<?>> classes = new HashSet<>();
        for (PrefillPolicy p : PrefillPolicy.values()) {
            assertThat(PrefillPolicy.parse(p.cliName())).isEqualTo(p);
            classes.add(p.create().getClass());
        }
        assertThat(classes).hasSize(PrefillPolicy.values().length);
        assertThat(AdmissionMode.parse("predictive-early-rejection").rule())
                .isInstanceOf(PredictiveEarlyRejection.class);
        assertThatThrownBy(() -> PrefillPolicy.parse("fastest"))
                .hasMessageContaining("'fastest'")
                .hasMessageContaining("kvcache-centric");
    }

    @Test
    void eachPolicyChoosesByItsOwnRule() {
        assertThat(choose(PrefillPolicy.LEAST_LOADED).instance).isEqualTo(0);
        assertThat(choose(PrefillPolicy.LONGEST_PREFIX).instance).isEqualTo(1);
        // cache-aware: 0 -> 1.0, 1 -> 2 + 0.6 = 2.6, 2 -> 0.5 + 0.9 = 1.4
        assertThat(choose(PrefillPolicy.CACHE_AWARE).instance).isEqualTo(0);
        // kvcache-centric: 0 fetches 10 blocks: 0.1 + 0 + 0.5 = 0.6, better than any local prefix
        PrefillChoice c = choose(PrefillPolicy.KVCACHE_CENTRIC);
        assertThat(c.instance).isEqualTo(0);
        assertThat(c.fetchBlocks).isEqualTo(10);
        assertThat(c.fetchFrom).isEqualTo(63);
        PrefillSelector rr = PrefillPolicy.ROUND_ROBIN.create();
        Cluster v = new Cluster();
        PrefillChoice out = new PrefillChoice();
        int[] seen = new int[4];
        for (int i = 0; i < 4; i++) {
            rr.choose(v, out);
            seen[i] = out.instance;
        }
        assertThat(seen).containsExactly(0, 1, 2, 0);
    }
}
