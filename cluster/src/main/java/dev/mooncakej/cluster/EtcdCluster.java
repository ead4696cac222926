package dev.mooncakej.cluster;

import dev.mooncakej.kvtransfer.engine.EtcdAccess;
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
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.logging.Logger;
import tools.jackson.databind.json.JsonMapper;

/**
 * The cluster's coordination on etcd (jetcd): workers register under a lease they keep alive (and
 * re-register when etcd comes back after losing it); the conductor watches the members and campaigns
 * for leadership. Every call that waits on etcd has a timeout: jetcd blocks while etcd is down.
 */
public final class EtcdCluster implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(EtcdCluster.class.getName());
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final Client client;
    private final String prefix;
    private final long ttlSeconds;
    private final Duration timeout;
    private volatile boolean closed;
    private volatile long memberLease;
    private volatile Member registered;
    private volatile AutoCloseable keepAlive;
    private volatile Watch.Watcher watcher;
    private volatile Thread campaigner;
    private volatile long electionLease;

    /**
     * @param etcd       how to reach etcd (endpoints checked there, TLS, authentication)
     * @param prefix     key prefix, e.g. {@code mooncakej/}
     * @param ttlSeconds lease TTL: a dead process leaves the cluster after this
     */
    public EtcdCluster(EtcdAccess etcd, String prefix, long ttlSeconds, Duration timeout) {
        if (prefix == null || prefix.isBlank() || !prefix.endsWith("/"))
            throw new IllegalArgumentException(
                    "mooncakej.cluster.prefix='" + prefix + "': expected a key prefix ending in /, such as mooncakej/");
        if (ttlSeconds < 1 || ttlSeconds > 3600)
            throw new IllegalArgumentException(
                    "mooncakej.cluster.lease-ttl-seconds=" + ttlSeconds + ": expected 1..3600");
        this.client = etcd.client();
        this.prefix = prefix;
        this.ttlSeconds = ttlSeconds;
        this.timeout = timeout;
    }

    public Client client() {
        return client;
    }
    /** The lease of this process's candidacy (0 before campaigning). */
    long electionLease() {
        return electionLease;
    }

    public long ttlSeconds() {
        return ttlSeconds;
    }

    private static ByteSequence bytes(String s) {
        return ByteSequence.from(s, StandardCharsets.UTF_8);
    }

    private String memberKey(Member m) {
        return prefix + "workers/" + m.role() + "/" + m.name();
    }

    /** Registers this worker under a fresh lease kept alive; if etcd is away, keeps trying in the background. */
    public void register(Member m) {
        registered = m;
        try {
            putMember(m);
            LOG.info("registered " + m.role() + " worker '" + m.name() + "' at " + m.url() + " in etcd (lease TTL "
                    + ttlSeconds + " s)");
        } catch (Exception e) {
            LOG.warning("cannot register in etcd now (" + e + "); retrying in the background, serving meanwhile");
            reRegisterLater();
        }
    }

    private synchronized void putMember(Member m) throws Exception {
        long lease = client.getLeaseClient()
                .grant(ttlSeconds)
                .get(timeout.toMillis(), TimeUnit.MILLISECONDS)
                .getID();
        client.getKVClient()
                .put(
                        bytes(memberKey(m)),
                        bytes(JSON.writeValueAsString(m)),
                        PutOption.builder().withLeaseId(lease).build())
                .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (keepAlive != null) keepAlive.close();
        memberLease = lease;
        keepAlive = client.getLeaseClient().keepAlive(lease, new StreamObserver<>() {
            @Override
            public void onNext(LeaseKeepAliveResponse r) {
                if (r.getTTL() <= 0 && memberLease == lease) {
                    LOG.warning("etcd lease " + lease + " expired: registering again");
                    reRegisterLater();
                }
            }

            @Override
            public void onError(Throwable t) {
                if (memberLease == lease && !closed) {
                    LOG.warning("etcd keep-alive of lease " + lease + " failed (" + t.getMessage()
                            + "): registering again when etcd answers");
                    reRegisterLater();
                }
            }

            @Override
            public void onCompleted() {}
        });
    }

    private final AtomicBoolean retrying = new AtomicBoolean();

    /** Re-registers (new lease) once etcd answers; one retry loop at a time. */
    private void reRegisterLater() {
        if (!retrying.compareAndSet(false, true)) return;
        Thread.ofVirtual().name("etcd-reregister").start(() -> {
            try {
                while (!closed && registered != null) {
                    try {
                        putMember(registered); // a fresh lease and keep-alive; an old lease still alive ends on its own
                        LOG.info("registered again in etcd as '" + registered.name() + "'");
                        return;
                    } catch (Exception e) {
                        Thread.sleep(500);
                    }
                }
            } catch (InterruptedException ignored) {
                // closing
            } finally {
                retrying.set(false);
            }
        });
    }

    private boolean exists(String key) throws Exception {
        return !client.getKVClient()
                .get(bytes(key))
                .get(timeout.toMillis(), TimeUnit.MILLISECONDS)
                .getKvs()
                .isEmpty();
    }

    /** Removes this worker's registration (graceful stop). */
    public void deregister() {
        Member m = registered;
        registered = null;
        if (m == null) return;
        try {
            client.getKVClient().delete(bytes(memberKey(m))).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            if (memberLease != 0)
                client.getLeaseClient().revoke(memberLease).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            LOG.warning("deregistration failed (" + e + "); the lease removes this worker within " + ttlSeconds + " s");
        }
    }

    /**
     * Calls {@code onChange} with every member (by name, sorted) now and after every change. Returns
     * once the initial list is read (or throws if etcd does not answer in time).
     */
    public void watchMembers(Consumer<Map<String, Member>> onChange) throws Exception {
        String dir = prefix + "workers/";
        TreeMap<String, Member> members = new TreeMap<>();
        var resp = client.getKVClient()
                .get(bytes(dir), GetOption.builder().isPrefix(true).build())
                .get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        for (KeyValue kv : resp.getKvs()) parse(kv).ifPresent(m -> members.put(m.name(), m));
        onChange.accept(Map.copyOf(members));
        long rev = resp.getHeader().getRevision() + 1;
        watcher = client.getWatchClient()
                .watch(
                        bytes(dir),
                        WatchOption.builder().isPrefix(true).withRevision(rev).build(),
                        Watch.listener(
                                w -> {
                                    synchronized (members) {
                                        for (WatchEvent ev : w.getEvents()) {
                                            String key =
                                                    ev.getKeyValue().getKey().toString(StandardCharsets.UTF_8);
                                            String name = key.substring(key.lastIndexOf('/') + 1);
                                            if (ev.getEventType() == WatchEvent.EventType.DELETE) members.remove(name);
                                            else parse(ev.getKeyValue()).ifPresent(m -> members.put(m.name(), m));
                                        }
                                        onChange.accept(Map.copyOf(members));
                                    }
                                },
                                err -> LOG.fine("etcd watch interrupted (it resumes by itself): " + err)));
    }

    private static Optional<Member> parse(KeyValue kv) {
        try {
            return Optional.of(JSON.readValue(kv.getValue().toString(StandardCharsets.UTF_8), Member.class));
        } catch (RuntimeException e) {
            LOG.warning("ignoring a malformed member entry at " + kv.getKey().toString(StandardCharsets.UTF_8) + ": "
                    + e.getMessage());
            return Optional.empty();
        }
    }

    /** The epoch of this process's leadership: the revision of its election key (0 before it is elected). */
    private volatile long leaderEpoch;

    /** When the election lease was last renewed (a keep-alive answered with a live TTL), System.nanoTime(). */
    private volatile long electionRenewedAt;

    /**
     * The epoch of this conductor's current leadership: the etcd revision at which its candidacy
     * became the leader, larger for every later leader; 0 when it does not lead.
     */
    public long leaderEpoch() {
        return leaderEpoch;
    }

    /**
     * Campaigns for leadership of {@code election} with {@code value} (e.g. this conductor's URL) in a
     * background thread; calls {@code onLeader} once elected ({@link #leaderEpoch()} is set by then).
     * Leadership lasts while this process keeps its lease alive: a dead leader's lease ends after the
     * TTL and the next candidate is elected. A leader whose lease has not been renewed for half the TTL
     * (etcd unreachable from here, while others may still reach it) stops leading before the lease
     * can lapse: {@code onLost} runs and it campaigns again. It also checks every half TTL that etcd
     * still names it. So two conductors never both lead: the next one is elected only after the lease
     * lapsed, and this one stepped down half a TTL before.
     */
    public void campaign(String election, String value, Runnable onLeader, Runnable onLost) {
        campaigner = Thread.ofPlatform().daemon().name("etcd-campaign").start(() -> {
            long halfTtl = TimeUnit.SECONDS.toNanos(ttlSeconds) / 2;
            long check = Math.max(50, ttlSeconds * 1000L / 10);
            while (!closed) {
                AutoCloseable renewal = null;
                try {
                    long lease = client.getLeaseClient()
                            .grant(ttlSeconds)
                            .get(timeout.toMillis(), TimeUnit.MILLISECONDS)
                            .getID();
                    electionLease = lease;
                    electionRenewedAt = System.nanoTime();
                    renewal = client.getLeaseClient().keepAlive(lease, new StreamObserver<>() {
                        @Override
                        public void onNext(LeaseKeepAliveResponse r) {
                            if (r.getTTL() > 0) electionRenewedAt = System.nanoTime();
                        }

                        @Override
                        public void onError(Throwable t) {}

                        @Override
                        public void onCompleted() {}
                    });
                    var won = client.getElectionClient()
                            .campaign(bytes(prefix + "election/" + election), lease, bytes(value))
                            .get();
                    if (System.nanoTime() - electionRenewedAt > halfTtl) {
                        LOG.warning("elected leader of '" + election + "' on a lease not renewed for half its TTL:"
                                + " campaigning again");
                        continue;
                    }
                    leaderEpoch = won.getLeader().getRevision();
                    LOG.info("elected leader of '" + election + "' (" + value + "), epoch " + leaderEpoch);
                    onLeader.run();
                    long lastCheck = System.nanoTime();
                    while (!closed) { // hold leadership while the lease is renewed and etcd names this candidate
                        Thread.sleep(check);
                        long silent = System.nanoTime() - electionRenewedAt;
                        if (silent > halfTtl) {
                            LOG.warning("leadership of '" + election + "': lease not renewed for "
                                    + TimeUnit.NANOSECONDS.toMillis(silent) + " ms (TTL " + ttlSeconds
                                    + " s): standing down before it can lapse, campaigning again");
                            leaderEpoch = 0;
                            onLost.run();
                            break;
                        }
                        if (System.nanoTime() - lastCheck < halfTtl) continue;
                        lastCheck = System.nanoTime();
                        // bounded by the check interval: a query that hangs (etcd unreachable) must not hold
                        // off the renewal check above, which is what stands this leader down in time
                        Optional<String> now = leader(election, Duration.ofMillis(check));
                        if (now.isPresent() && !now.get().equals(value)) {
                            LOG.warning("leadership of '" + election + "' lost to " + now.get()
                                    + "; standing by and campaigning again");
                            leaderEpoch = 0;
                            onLost.run();
                            break;
                        }
                    }
                } catch (InterruptedException e) {
                    return;
                } catch (Exception e) {
                    if (closed) return;
                    LOG.warning("campaign for '" + election + "' interrupted (" + e.getMessage() + "); trying again");
                    try {
                        Thread.sleep(500);
                    } catch (InterruptedException ie) {
                        return;
                    }
                } finally {
                    if (renewal != null) {
                        try {
                            renewal.close(); // the next candidacy gets a lease of its own
                        } catch (Exception ignored) {
                            // closing
                        }
                        if (!closed) // best effort, not awaited: its key goes at once if etcd answers, else at its TTL
                        client.getLeaseClient().revoke(electionLease);
                    }
                }
            }
        });
    }

    public void campaign(String election, String value, Runnable onLeader) {
        campaign(election, value, onLeader, () -> {});
    }

    /** The current leader's value of {@code election}, if any. */
    public Optional<String> leader(String election) {
        return leader(election, timeout);
    }

    /** As {@link #leader(String)}, waiting at most {@code wait} for etcd. */
    public Optional<String> leader(String election, Duration wait) {
        try {
            var r = client.getElectionClient()
                    .leader(bytes(prefix + "election/" + election))
                    .get(wait.toMillis(), TimeUnit.MILLISECONDS);
            return Optional.of(r.getKv().getValue().toString(StandardCharsets.UTF_8));
        } catch (Exception e) {
            return Optional.empty();
        }
    }

    @Override
    public void close() {
        closed = true;
        if (watcher != null) watcher.close();
        if (campaigner != null) campaigner.interrupt();
        try {
            if (keepAlive != null) keepAlive.close();
            if (electionLease != 0)
                client.getLeaseClient().revoke(electionLease).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception ignored) {
            // closing
        }
        client.close();
    }
}
