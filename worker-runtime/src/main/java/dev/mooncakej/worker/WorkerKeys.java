package dev.mooncakej.worker;

import dev.mooncakej.kvcache.Redacted;
import java.util.Map;

/**
 * The keys both workers take, as bound under {@code mooncakej.prefill.} or {@code mooncakej.decode.}
 * (unchecked; null where unset): the model, the KV slab, the transfer endpoint, the engine and the
 * conductor to report to. {@link WorkerSettings#of} checks them and fills in the defaults. Each app
 * keeps its own keys (the prefill chunk, the decode batch and waits) in its own record.
 */
public record WorkerKeys(
        String model,
        Integer blockTokens,
        Integer kvBlocks,
        Integer threads,
        String kvHost,
        Integer kvPort,
        Long kvTimeoutMillis,
        String kvSecret,
        String kvTransports,
        String kvShmDir,
        Map<String, String> kvRdma,
        String engine,
        String simProfile,
        Double simTimeScale,
        String conductorUrl,
        Double calibrationSeconds,
        String simReply) {

    /** The record's text with the secret left out (it must never reach a log). */
    @Override
    public String toString() {
        return Redacted.toString(this, "kvSecret");
    }
}
