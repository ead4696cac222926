package dev.mooncakej.scheduler;

import java.util.Arrays;

/**
 * One decode instance as the scheduler sees it: running requests (with their decode start times, for
 * the load prediction), their context, the KV they hold, and requests still in prefill that will
 * arrive here (with their predicted arrival).
 */
public final class DecodeInstance {
    final int id;
    long kvCapacityTokens;
    int running;
    /**
     * Requests and KV the worker reports beyond what this scheduler placed (e.g. placed by a conductor that failed
     * over).
     */
    int externalRunning;

    long externalKvTokens;
    long contextTokens;
    long kvTokens;
    private double[] starts = new double[64];
    private double[] incoming = new double[64];
    private long[] incomingTokens = new long[64];
    private long[] incomingKv = new long[64];
    private int incomingCount;
    long incomingTokenSum;
    /** KV reserved here by requests still in prefill (a live request reserves prompt plus max tokens). */
    long incomingKvSum;

    DecodeInstance(int id, long kvCapacityTokens) {
        this.id = id;
        this.kvCapacityTokens = kvCapacityTokens;
    }

    public int id() {
        return id;
    }

    public int running() {
        return running;
    }

    public int externalRunning() {
        return externalRunning;
    }

    public long contextTokens() {
        return contextTokens;
    }

    public long kvTokens() {
        return kvTokens;
    }

    public long kvCapacityTokens() {
        return kvCapacityTokens;
    }

    public int incoming() {
        return incomingCount;
    }

    /** KV for {@code tokens} more tokens is reserved here (at scheduling, so later decisions see it). */
    public boolean fits(long tokens) {
        return kvTokens + tokens <= kvCapacityTokens;
    }

    public long incomingKvTokens() {
        return incomingKvSum;
    }

    void expect(double arrival, long tokens, long kv) {
        if (incomingCount == incoming.length) {
            incoming = Arrays.copyOf(incoming, incomingCount * 2);
            incomingTokens = Arrays.copyOf(incomingTokens, incomingCount * 2);
            incomingKv = Arrays.copyOf(incomingKv, incomingCount * 2);
        }
        incoming[incomingCount] = arrival;
        incomingKv[incomingCount] = kv;
        incomingTokens[incomingCount++] = tokens;
        incomingTokenSum += tokens;
        incomingKvSum += kv;
    }

    void arrived(double predictedArrival) {
        for (int i = 0; i < incomingCount; i++) {
            if (incoming[i] == predictedArrival) {
                incomingTokenSum -= incomingTokens[i];
                incomingKvSum -= incomingKv[i];
                incoming[i] = incoming[--incomingCount];
                incomingTokens[i] = incomingTokens[incomingCount];
                incomingKv[i] = incomingKv[incomingCount];
                return;
            }
        }
    }

    void startRunning(double now, long context) {
        if (running == starts.length) starts = Arrays.copyOf(starts, running * 2);
        starts[running++] = now;
        contextTokens += context;
    }

    void stopRunning(double start, long context) {
        for (int i = 0; i < running; i++) {
            if (starts[i] == start) {
                starts[i] = starts[--running];
                contextTokens -= context;
                return;
            }
        }
        throw new IllegalStateException("no running request started at " + start + " on decode instance " + id);
    }

    /** Requests predicted to be decoding here at time t, with decodes assumed to last tD. */
    int predictedAt(double t, double tD) {
        int n = 0;
        for (int i = 0; i < running; i++) if (starts[i] + tD > t) n++;
        for (int i = 0; i < incomingCount; i++) if (incoming[i] <= t) n++;
        return n;
    }

    /**
     * KV tokens predicted here at time t: running requests not ended by then (at their average context) plus arrivals
     * by then.
     */
    long predictedTokensAt(double t, double tD) {
        double avg = running > 0 ? (double) contextTokens / running : 0;
        long n = 0;
        for (int i = 0; i < running; i++) if (starts[i] + tD > t) n++;
        long tokens = (long) (n * avg);
        for (int i = 0; i < incomingCount; i++) if (incoming[i] <= t) tokens += incomingTokens[i];
        return tokens;
    }
}
