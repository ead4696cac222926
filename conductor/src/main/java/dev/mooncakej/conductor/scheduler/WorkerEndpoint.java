package dev.mooncakej.conductor.scheduler;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What the scheduler knows of one worker: its URL, requests in flight, and (prefill) the block keys
 * routed to it recently, a bounded LRU standing in for its prefix cache.
 */
public final class WorkerEndpoint {
    private final String url;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final int rememberedKeys;
    private final LinkedHashMap<Long, Boolean> keys;

    public WorkerEndpoint(String url, int rememberedKeys) {
        this.url = url;
        this.rememberedKeys = rememberedKeys;
        this.keys = new LinkedHashMap<>(256, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, Boolean> e) {
                return size() > WorkerEndpoint.this.rememberedKeys;
            }
        };
    }

    public String url() { return url; }
    public int inFlight() { return inFlight.get(); }
    public void started() { inFlight.incrementAndGet(); }
    public void ended() { inFlight.decrementAndGet(); }

    /** How many leading keys this worker is believed to hold. */
    public synchronized int matchedPrefix(long[] blockKeys) {
        int n = 0;
        while (n < blockKeys.length && keys.containsKey(blockKeys[n])) n++;
        return n;
    }

    public synchronized void remember(long[] blockKeys) {
        for (long k : blockKeys) keys.put(k, Boolean.TRUE);
    }
}
