package dev.mooncakej.conductor.scheduling;

import java.util.HashMap;

/**
 * Global prefix index: block key -> bit set of the prefill instances (up to 64) whose cache holds it.
 * Because keys are prefix hashes, an instance's longest prefix match is the first block it lacks.
 */
public final class PrefixIndex {
    private final HashMap<Long, Long> holders = new HashMap<>();

    void add(long block, int instance) {
        holders.merge(block, 1L << instance, (a, b) -> a | b);
    }

    void remove(long block, int instance) {
        Long bits = holders.get(block);
        if (bits == null) return;
        long left = bits & ~(1L << instance);
        if (left == 0) holders.remove(block);
        else holders.put(block, left);
    }

    /** Per instance, how many leading blocks of {@code blocks} it holds; written into {@code out}. */
    public void prefixLengths(long[] blocks, int instances, int[] out) {
        java.util.Arrays.fill(out, 0, instances, 0);
        long alive = instances == 64 ? -1L : (1L << instances) - 1;
        for (int i = 0; i < blocks.length && alive != 0; i++) {
            Long bits = holders.get(blocks[i]);
            long now = bits == null ? 0 : bits & alive;
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

    public int size() { return holders.size(); }
}
