package dev.mooncakej.scheduler.policy;

/**
 * A prefill policy's answer, reused across decisions (no allocation on the scheduling path): the
 * instance, and the blocks it fetches and from where (none: {@code fetchBlocks} 0, {@code fetchFrom} -1).
 */
public final class PrefillChoice {
    public int instance = -1;
    public int fetchBlocks;
    public int fetchFrom = -1;

    /** Chooses {@code i} with its local prefix only. */
    public void set(int i) {
        set(i, 0, -1);
    }

    public void set(int i, int blocks, int from) {
        instance = i;
        fetchBlocks = blocks;
        fetchFrom = blocks > 0 ? from : -1;
    }
}
