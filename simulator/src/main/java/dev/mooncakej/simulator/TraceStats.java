package dev.mooncakej.simulator;

import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Prefix-cache hit ratio of a trace under one cache of a given capacity in blocks (0: unbounded).
 * Definition: a request's hit is the longest prefix of its hash_ids that is cached when it arrives;
 * then all its blocks are inserted or touched. By block: hit blocks over all blocks; by token: hit
 * tokens (hit blocks x block size, at most the input length) over all input tokens.
 */
public final class TraceStats {
    public static final String HIT_DEFINITION =
            "a request's hit = the longest prefix of its hash_ids cached when it arrives; "
                    + "afterwards all its blocks are inserted or touched";

    public record Result(
            int requests, double meanInput, double meanOutput, double hitRatioBlocks, double hitRatioTokens) {}

    private TraceStats() {}

    public static Result of(List<TraceRequest> trace, int capacityBlocks, boolean lfu, int blockTokens) {
        long inSum = 0, outSum = 0, blocks = 0, hitBlocks = 0, hitTokens = 0;
        LinkedHashMap<Long, Boolean> lru = new LinkedHashMap<>(1 << 16, 0.75f, true);
        HashMap<Long, long[]> freq = new HashMap<>(); // block -> {count, last use}
        TreeSet<long[]> byFreq = new TreeSet<>((a, b) -> a[1] != b[1]
                ? Long.compare(a[1], b[1])
                : a[2] != b[2] ? Long.compare(a[2], b[2]) : Long.compare(a[0], b[0]));
        long clock = 0;
        for (TraceRequest r : trace) {
            inSum += r.inputTokens();
            outSum += r.outputTokens();
            blocks += r.blocks().length;
            int hit = 0;
            while (hit < r.blocks().length
                    && (lfu ? freq.containsKey(r.blocks()[hit]) : lru.containsKey(r.blocks()[hit]))) hit++;
            hitBlocks += hit;
            hitTokens += Math.min((long) hit * blockTokens, r.inputTokens());
            for (long b : r.blocks()) {
                clock++;
                if (lfu) {
                    long[] e = freq.get(b);
                    if (e != null) byFreq.remove(e);
                    long[] ne = {b, e == null ? 1 : e[1] + 1, clock};
                    freq.put(b, ne);
                    byFreq.add(ne);
                    if (capacityBlocks > 0 && freq.size() > capacityBlocks) {
                        long[] victim = byFreq.pollFirst();
                        freq.remove(victim[0]);
                    }
                } else {
                    lru.put(b, Boolean.TRUE);
                    if (capacityBlocks > 0 && lru.size() > capacityBlocks) {
                        Iterator<Map.Entry<Long, Boolean>> it = lru.entrySet().iterator();
                        it.next();
                        it.remove();
                    }
                }
            }
        }
        int n = trace.size();
        return new Result(
                n,
                (double) inSum / n,
                (double) outSum / n,
                blocks == 0 ? 0 : (double) hitBlocks / blocks,
                inSum == 0 ? 0 : (double) hitTokens / inSum);
    }
}
