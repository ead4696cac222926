package dev.mooncakej.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The block-key specification of docs/hashing.md, with its test vectors. */
class BlockKeysTest {

    @Test
    void matchesThePublishedTestVectors() {
        BlockKeys k = new BlockKeys("test-model", 4);
        int[] tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        long[] keys = k.keys(tokens);
        assertThat(keys).hasSize(2);
        assertThat(String.format("%016x", k.seed())).isEqualTo(Vectors.SEED);
        assertThat(String.format("%016x", keys[0])).isEqualTo(Vectors.KEY0);
        assertThat(String.format("%016x", keys[1])).isEqualTo(Vectors.KEY1);
    }

    @Test
    void equalKeysMeanEqualPrefixesAndAChangeChangesEveryLaterKey() {
        BlockKeys k = new BlockKeys("m", 2);
        long[] a = k.keys(new int[] {1, 2, 3, 4, 5, 6});
        long[] b = k.keys(new int[] {1, 2, 3, 4, 5, 6, 7});
        long[] c = k.keys(new int[] {1, 2, 9, 4, 5, 6});
        assertThat(b).hasSize(3).containsExactly(a);
        assertThat(c[0]).isEqualTo(a[0]);
        assertThat(c[1]).isNotEqualTo(a[1]);
        assertThat(c[2]).isNotEqualTo(a[2]);
        assertThat(new BlockKeys("other", 2).keys(new int[] {1, 2})[0]).isNotEqualTo(a[0]);
        assertThat(new BlockKeys("m", 3).keys(new int[] {1, 2, 3})).hasSize(1);
    }

    @Test
    void aSequenceContinuedFromItsPromptKeysHasTheKeysOfTheWholeSequence() {
        BlockKeys k = new BlockKeys("m", 4);
        int[] all = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
        long[] prompt = k.keys(Arrays.copyOf(all, 6)); // one full block, two tokens after it
        long[] whole = new BlockKeys(k.seed(), 4).extend(prompt, Arrays.copyOfRange(all, 4, 14), 10);
        assertThat(whole).containsExactly(k.keys(all));
        assertThat(whole).hasSize(3);
        assertThat(new BlockKeys(k.seed(), 4).extend(prompt, new int[] {5, 6, 99, 8}, 4)[1])
                .isNotEqualTo(k.keys(all)[1]);
    }

    /** Test vectors, also printed in docs/hashing.md. */
    static final class Vectors {
        static final String SEED = "678721d829b4204c";
        static final String KEY0 = "6d42e288cb9beadf";
        static final String KEY1 = "018ab4c6cd6dd7d6";
    }
}
