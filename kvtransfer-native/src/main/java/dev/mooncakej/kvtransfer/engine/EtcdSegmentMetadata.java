package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import io.etcd.jetcd.ByteSequence;
import io.etcd.jetcd.Client;
import io.etcd.jetcd.KeyValue;
import io.etcd.jetcd.Watch;
import io.etcd.jetcd.lease.LeaseKeepAliveResponse;
import io.etcd.jetcd.options.GetOption;
import io.etcd.jetcd.options.PutOption;
import io.etcd.jetcd.options.WatchOption;
import io.etcd.jetcd.watch.WatchEvent;
import io.grpc.stub.StreamObserver;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import java.util.logging.Logger;

/**
 * Segment metadata in etcd, as Mooncake keeps it: {@code <prefix>ram/<segment>} holds the descriptor as
 * JSON. Everything this process publishes is attached to one lease that it keeps alive, so when the
 * process dies its segments disappear after the TTL. Lookups are served from a local copy kept
 * current by a watch on the prefix (so the hot path never waits for etcd); a miss asks etcd once.
 * etcd being away does not stop transfers between peers already known; the lease is re-granted and
 * the segments re-published when it returns.
 */
public final class EtcdSegmentMetadata implements SegmentMetadata {
    private static final Logger LOG = Logger.getLogger(EtcdSegmentMetadata.class.getName());

    private final Client client;
    private final String prefix;
    private final long ttlSeconds;
    private final Duration timeout;
    private final Map<String, SegmentDescriptor> cache = new ConcurrentHashMap<>();
    private final Map<String, SegmentDescriptor> mine = new ConcurrentHashMap<>();
    private final List<BiConsumer<String, SegmentDescriptor>> listeners = new CopyOnWriteArrayList<>();
    private final Watch.Watcher watcher;
    private volatile long lease;
    private volatile AutoCloseable keepAlive;

    /**
     * @param endpoints  etcd client URLs, e.g. {@code http://127.0.0.1:2379}
     * @param prefix     key prefix, e.g. {@code mooncakej/}
     * @param ttlSeconds lease TTL: how long a dead process's segments stay visible
     */
    public EtcdSegmentMetadata(List<String> endpoints, String prefix, long ttlSeconds, Duration timeout) {
        this(EtcdAccess.plain(endpoints), prefix, ttlSeconds, timeout);
    }

    /**
     * @param etcd       how to reach etcd (endpoints, TLS, authentication)
     * @param prefix     key prefix, e.g. {@code mooncakej/}
     * @param ttlSeconds lease TTL: how long a dead process's segments stay visible
     */
    public EtcdSegmentMetadata(EtcdAccess etcd, String prefix, long ttlSeconds, Duration timeout) {
        List<String> endpoints = etcd.endpoints();
        if (ttlSeconds < 1)
            throw new IllegalArgumentException("transfer metadata lease TTL " + ttlSeconds + ": expected >= 1 second");
        if (prefix == null || prefix.isEmpty())
            throw new IllegalArgumentException(
                    "transfer metadata prefix: expected a non-empty key prefix such as mooncakej/");
        this.client = etcd.client();
        this.prefix = prefix + "ram/";
        this.ttlSeconds = ttlSeconds;
        this.timeout = timeout;
        long revision;
        try {
            var snapshot = client.getKVClient()
                    .get(bytes(this.prefix), GetOption.builder().isPrefix(true).build())
                    .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            revision = snapshot.getHeader().getRevision();
            for (KeyValue kv : snapshot.getKvs()) {
                accept(
                        kv.getKey().toString(StandardCharsets.UTF_8),
                        kv.getValue().toString(StandardCharsets.UTF_8),
                        kv.getModRevision());
            }
        } catch (Exception e) {
            client.close();
            throw new IllegalStateException(
                    "cannot reach etcd at " + endpoints + " within " + timeout.toMillis() + " ms (" + e
                            + "): check transfer metadata endpoints",
                    e);
        }
        this.watcher = client.getWatchClient()
                .watch(
                        bytes(this.prefix),
                        // from the revision after the snapshot: a descriptor published between the read and
                        // the watch's start is delivered, not lost (seen: a peer's buffers missing for good)
                        WatchOption.builder()
                                .isPrefix(true)
                                .withRevision(revision + 1)
                                .build(),
                        Watch.listener(
                                resp -> {
                                    for (WatchEvent ev : resp.getEvents()) {
                                        String key = ev.getKeyValue().getKey().toString(StandardCharsets.UTF_8);
                                        long rev = ev.getKeyValue().getModRevision();
                                        if (ev.getEventType() == WatchEvent.EventType.PUT)
                                            accept(
                                                    key,
                                                    ev.getKeyValue().getValue().toString(StandardCharsets.UTF_8),
                                                    rev);
                                        else if (ev.getEventType() == WatchEvent.EventType.DELETE) deleted(key, rev);
                                    }
                                },
                                err -> LOG.fine("etcd watch interrupted (it resumes by itself): " + err)));
    }

    /** The etcd revision of what the cache holds for each name (deletes too): an older answer never wins. */
    private final Map<String, Long> revisions = new HashMap<>();

    /**
     * A descriptor as etcd held it at {@code revision}. The watch and a lookup's read race: a read that
     * returned an older version must not overwrite the newer one the watch delivered meanwhile (seen: a
     * decode worker's descriptor without its KV buffers kept for good, and every write to them refused).
     */
    void accept(String key, String json, long revision) {
        String name = key.substring(prefix.length());
        SegmentDescriptor d;
        try {
            d = DescriptorJson.read(json, "etcd key " + key);
        } catch (IllegalArgumentException e) {
            LOG.warning(e.getMessage() + " (ignored)");
            return;
        }
        synchronized (revisions) {
            Long known = revisions.get(name);
            if (known != null && known > revision) return;
            revisions.put(name, revision);
            cache.put(name, d);
        }
        listeners.forEach(l -> l.accept(name, d));
    }

    private void deleted(String key, long revision) {
        String name = key.substring(prefix.length());
        boolean removed;
        synchronized (revisions) {
            Long known = revisions.get(name);
            if (known != null && known > revision) return;
            revisions.put(name, revision);
            removed = cache.remove(name) != null;
        }
        if (removed) listeners.forEach(l -> l.accept(name, null));
    }

    private synchronized long lease() throws Exception {
        if (lease != 0) return lease;
        long id = client.getLeaseClient()
                .grant(ttlSeconds)
                .get(timeout.toMillis(), TimeUnit.MILLISECONDS)
                .getID();
        lease = id;
        keepAlive = client.getLeaseClient().keepAlive(id, new StreamObserver<>() {
            @Override
            public void onNext(LeaseKeepAliveResponse r) {}

            @Override
            public void onError(Throwable t) {
                LOG.warning("etcd lease " + id + " keep-alive failed (" + t.getMessage()
                        + "): re-publishing under a new lease");
                synchronized (EtcdSegmentMetadata.this) {
                    if (lease == id) lease = 0;
                }
                Thread.ofVirtual().start(EtcdSegmentMetadata.this::republish);
            }

            @Override
            public void onCompleted() {}
        });
        return id;
    }

    /** Re-grants the lease and re-publishes this process's segments, retrying until etcd answers or closed. */
    private void republish() {
        for (int attempt = 0; attempt < 600 && !closed; attempt++) {
            try {
                for (SegmentDescriptor d : mine.values()) put(d);
                return;
            } catch (Exception e) {
                try {
                    Thread.sleep(500);
                } catch (InterruptedException ie) {
                    return;
                }
            }
        }
    }

    private volatile boolean closed;

    private void put(SegmentDescriptor d) throws Exception {
        client.getKVClient()
                .put(
                        bytes(prefix + d.name()),
                        bytes(DescriptorJson.write(d)),
                        PutOption.builder().withLeaseId(lease()).build())
                .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    @Override
    public void publish(SegmentDescriptor d) {
        mine.put(d.name(), d);
        cache.put(d.name(), d);
        try {
            put(d);
        } catch (Exception e) {
            LOG.warning(
                    "cannot publish segment '" + d.name() + "' to etcd now (" + e + "); retrying in the background");
            Thread.ofVirtual().start(this::republish);
        }
    }

    @Override
    public Optional<SegmentDescriptor> lookup(String name) {
        SegmentDescriptor d = cache.get(name);
        if (d != null) return Optional.of(d);
        try {
            List<KeyValue> kvs = client.getKVClient()
                    .get(bytes(prefix + name))
                    .get(timeout.toMillis(), TimeUnit.MILLISECONDS)
                    .getKvs();
            if (kvs.isEmpty()) return Optional.empty();
            accept(
                    prefix + name,
                    kvs.get(0).getValue().toString(StandardCharsets.UTF_8),
                    kvs.get(0).getModRevision());
            return Optional.ofNullable(cache.get(name));
        } catch (Exception e) {
            return Optional.empty();
        }
    }

    @Override
    public void remove(String name) {
        mine.remove(name);
        cache.remove(name);
        try {
            client.getKVClient().delete(bytes(prefix + name)).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            LOG.warning("cannot delete segment '" + name + "' from etcd (" + e + "); its lease removes it");
        }
    }

    @Override
    public AutoCloseable watch(BiConsumer<String, SegmentDescriptor> listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    @Override
    public void close() {
        closed = true;
        watcher.close();
        try {
            if (keepAlive != null) keepAlive.close();
            if (lease != 0) client.getLeaseClient().revoke(lease).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            LOG.fine("lease revoke on close failed: " + e);
        }
        client.close();
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }
}
