package dev.mooncakej.conductor.scheduler;

import java.util.List;

/**
 * A simple cache-aware policy (the full KVCache-centric scheduler is its own issue): the prefill
 * worker believed to hold the longest prefix of the prompt's block keys, ties broken by fewest
 * requests in flight; the decode worker with fewest requests in flight. Plain Java, no Spring.
 */
public final class CacheAwareScheduler {
    private final List<WorkerEndpoint> prefill;
    private final List<WorkerEndpoint> decode;

    public CacheAwareScheduler(List<WorkerEndpoint> prefill, List<WorkerEndpoint> decode) {
        this.prefill = List.copyOf(prefill);
        this.decode = List.copyOf(decode);
    }

    public List<WorkerEndpoint> prefillWorkers() { return prefill; }
    public List<WorkerEndpoint> decodeWorkers() { return decode; }

    /** The prefill worker for these block keys, or null when there is none. */
    public WorkerEndpoint choosePrefill(long[] blockKeys) {
        WorkerEndpoint best = null;
        int bestMatch = -1;
        for (WorkerEndpoint w : prefill) {
            int m = w.matchedPrefix(blockKeys);
            if (m > bestMatch || (m == bestMatch && w.inFlight() < best.inFlight())) {
                best = w;
                bestMatch = m;
            }
        }
        return best;
    }

    /** Decode workers, least loaded first (the caller tries them in order while they are full). */
    public List<WorkerEndpoint> decodeCandidates() {
        return decode.stream().sorted(java.util.Comparator.comparingInt(WorkerEndpoint::inFlight)).toList();
    }
}
