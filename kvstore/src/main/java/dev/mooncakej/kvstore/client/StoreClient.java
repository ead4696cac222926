package dev.mooncakej.kvstore.client;

import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreAnswers;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreGet;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreHeld;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreMount;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePut;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePutStarted;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreReplicas;
import java.util.List;

/**
 * The store master's internal API (on the leader conductor), typed: each call answers null when the
 * master did not take it (no leader, a standby, unreachable, a refused message), so a caller falls
 * back (recomputes, skips the put) and the request it serves still succeeds.
 */
public final class StoreClient {
    /** POSTs internal JSON to the master; the answer's body, or null. */
    @FunctionalInterface
    public interface Transport {
        String post(String path, String json);
    }

    /** Suffix of a segment the master allocates in (a worker's pool), as the master names it. */
    public static final String POOL_SUFFIX = ":pool";
    /** Suffix of a worker's SSD tier, as the master names it. */
    public static final String SSD_SUFFIX = ":ssd";

    private final Transport transport;

    public StoreClient(Transport transport) {
        this.transport = transport;
    }

    /** The transfer segment that holds a replica named {@code segment} (its tier suffix removed). */
    public static String transferSegment(String segment) {
        int i = segment.indexOf(':');
        return i < 0 ? segment : segment.substring(0, i);
    }

    /** Whether a replica lives in memory the master allocated (protected by the read lease alone). */
    public static boolean allocated(String segment) {
        return segment.endsWith(POOL_SUFFIX);
    }

    public boolean mount(StoreMount m) {
        return transport.post("/internal/store/mount", InternalJson.encode(m)) != null;
    }

    public boolean held(StoreHeld h) {
        return transport.post("/internal/store/held", InternalJson.encode(h)) != null;
    }

    public StoreReplicas get(long[] keys) {
        return decode(
                transport.post("/internal/store/get", InternalJson.encode(new StoreGet(keys))), StoreReplicas.class);
    }

    public StorePutStarted putStart(String client, long[] keys, long blockBytes, String preferredSegment) {
        return putStart(client, keys, blockBytes, preferredSegment, false);
    }

    /** As above; {@code elsewhere}: in any segment but {@code segment} (a copy that outlives its writer). */
    public StorePutStarted putStart(String client, long[] keys, long blockBytes, String segment, boolean elsewhere) {
        return decode(
                transport.post(
                        "/internal/store/put-start",
                        InternalJson.encode(new StorePut(client, keys, blockBytes, segment, elsewhere))),
                StorePutStarted.class);
    }

    public List<String> putEnd(long[] keys) {
        return answers("/internal/store/put-end", keys, false);
    }

    public List<String> putRevoke(long[] keys) {
        return answers("/internal/store/put-revoke", keys, false);
    }

    public List<String> exists(long[] keys) {
        return answers("/internal/store/exists", keys, false);
    }

    public List<String> remove(long[] keys, boolean force) {
        return answers("/internal/store/remove", keys, force);
    }

    private List<String> answers(String path, long[] keys, boolean force) {
        StoreAnswers a =
                decode(transport.post(path, InternalJson.encode(new StoreKeys(keys, force))), StoreAnswers.class);
        return a == null ? null : a.answers();
    }

    private static <T> T decode(String body, Class<T> type) {
        return body == null ? null : InternalJson.decode(body, type);
    }
}
