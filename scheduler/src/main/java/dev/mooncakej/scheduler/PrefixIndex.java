package dev.mooncakej.scheduler;

import java.util.Arrays;

/**
 * Global prefix index: block key -> bit set of the prefill instances (up to 64) whose cache holds it.
 * Because keys are prefix hashes, an instance's longest prefix match is the first block it lacks.
 */
public final class PrefixIndex {
    private final LongLongMap holders = new LongLongMap();

    void add(long block, int instance) {
        holders.put(block, holders.get(block) | (1L << instance));
    }

    void remove(long block, int instance) {
        holders.put(block, holders.get(block) & ~(1L << instance));
    }

    /** Per instance, how many leading blocks of {@code blocks} it holds; written into {@code out}. */
    public void prefixLengths(long[] blocks, int instances, int[] out) {
        prefixLengths(blocks, instances, out, null);
    }

    /**
     * As above, a block counting for an instance when this index or {@code also} (null: none) has it
     * for that instance (held, or to be held).
     */
    public void prefixLengths(long[] blocks, int instances, int[] out, PrefixIndex also) {
        Arrays.fill(out, 0, instances, 0);
        long alive = instances == 64 ? -1L : (1L << instances) - 1;
        for (int i = 0; i < blocks.length && alive != 0; i++) {
            long bits = holders.get(blocks[i]);
            if (also != null && also.holders.size() > 0) bits |= also.holders.get(blocks[i]);
            long now = bits & alive;
            long dropped = alive & ~now;
            while (dropped != 0) {
                int inst = Long.numberOfTrailingZeros(dropped);
                out[inst] = i;
                dropped &= dropped - 1;
            }
            alive = now;
        }
        while (alive != 0) { // held the whole prompt
            int inst = Long.numberOfTrailingZeros(alive);
            out[inst] = blocks.length;
            alive &= alive - 1;
        }
    }

    /** How many leading blocks of {@code blocks} some holder in {@code mask} (one bit per holder) has. */
    public int prefixLengthAny(long[] blocks, long mask) {
        int n = 0;
        while (n < blocks.length && (holders.get(blocks[n]) & mask) != 0) n++;
        return n;
    }

    public int size() {
        return holders.size();
    }
}
