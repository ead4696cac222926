package dev.mooncakej.kvcache.wire;

/**
 * JSON messages between the conductor and the workers (internal API, HTTP). Records, so Jackson reads
 * and writes them as they are.
 */
public final class WorkerMessages {
    private WorkerMessages() {}

    /** Sampling settings carried to the worker that samples. */
    public record Sampling(float temperature, float topP, int topK, Long seed, boolean logprobs) {}

    /** Conductor -> decode worker: reserve KV blocks for a prompt of {@code promptTokens} (plus room to decode). */
    public record ReserveRequest(long requestId, int promptTokens, int maxTokens) {}

    /** Decode worker -> conductor: where the prefill must write the KV. */
    public record ReserveResponse(long requestId, KvTarget kv, int blocks, int blockTokens) {}

    /**
     * Where a request's KV goes: the decode worker's transfer segment (its name and descriptor, so the
     * prefill worker can open it without a metadata store), the offset of each reserved block in that
     * segment, and the bytes of one layer of one block (layer l of block b is at
     * {@code blockOffsets[b] + l * layerBytes}).
     */
    public record KvTarget(String segment, String descriptor, long[] blockOffsets, long layerBytes) {}

    /** Conductor -> prefill worker: compute the prompt's KV and write it to the decode worker. */
    public record PrefillTask(long requestId, int[] tokens, long[] blockKeys, KvTarget kv, Sampling sampling) {}

    /** Prefill worker -> conductor: the first token, once all the KV has reached the decode worker. */
    public record PrefillResult(long requestId, int firstToken, float firstLogprob, int cachedTokens,
                                double prefillSeconds, long kvBytes, double kvSeconds) {}

    /** Conductor -> decode worker: start decoding after {@code firstToken}. */
    public record DecodeTask(long requestId, int firstToken, int promptTokens, int maxTokens, Sampling sampling) {}

    /** Decode worker -> conductor, one JSON object per line: a token, or the end ({@code finish} set). */
    public record TokenEvent(int token, float logprob, String finish) {
        public static TokenEvent token(int id, float logprob) { return new TokenEvent(id, logprob, null); }
        public static TokenEvent end(String reason) { return new TokenEvent(-1, 0f, reason); }
    }

    /** Prefill worker -> conductor: every block key in its prefix cache (pulled by a new leader). */
    public record KvIndex(String worker, long[] blockKeys) {}

    /** Prefill worker -> leader conductor, pushed as they happen: blocks that entered and left its prefix cache. */
    public record KvEvents(String worker, long[] stored, long[] evicted) {}

    /** A worker's load and pool, for scheduling and dashboards. */
    public record WorkerStatus(String role, String model, int blockTokens, int freeBlocks, int usedBlocks,
                               int capacityBlocks, int active, int queued, int cachedBlocks) {}

    /** Error body of the internal API. */
    public record WorkerError(String code, String message) {}
}
