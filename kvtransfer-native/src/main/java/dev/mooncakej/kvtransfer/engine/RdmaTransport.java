package dev.mooncakej.kvtransfer.engine;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.mooncakej.kvtransfer.rdma.RdmaAddressing;
import dev.mooncakej.kvtransfer.rdma.RdmaSettings;
import dev.mooncakej.kvtransfer.rdma.Verbs;
import dev.mooncakej.kvtransfer.rdma.VerbsLayouts;
import dev.mooncakej.kvtransfer.rdma.VerbsLib;
import dev.mooncakej.kvtransfer.rdma.VerbsOps;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.nio.file.Files;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BiFunction;
import java.util.logging.Logger;
import tools.jackson.databind.json.JsonMapper;

/**
 * The rdma transport: libibverbs through FFM.
 *
 * <p>Devices: each is opened on the configured port with a protection domain and one completion
 * queue sized from the device's limits; its address (LID on InfiniBand, the chosen RoCE v2 GID on
 * Ethernet) goes into the segment descriptor. Only the buffers the engine registers (the KV slab, the
 * store's DRAM pool) become memory regions, one per device, so an authenticated peer reaches exactly
 * those ranges and nothing else of the segment.
 *
 * <p>Endpoints: (local device, peer segment, peer device) holding one RC queue pair. An endpoint is
 * created in the pool without any native call; its handshake (exchanging qpn, LID, GID, active MTU
 * and read depth over the authenticated control channel; both sides connect with the smaller MTU and
 * depth) runs on a connector thread, never on the poller or under the pool's lock, while slices queue.
 *
 * <p>Completions: work in flight on a device never exceeds its completion queue (credits), and on a
 * queue pair never its send queue. One poller reaps; a failed completion breaks its endpoint: the QP
 * is moved to ERROR so the rest of its work is flushed, each flushed slice is failed so the engine
 * retries it on another path, and the QP is destroyed only once drained (or, after drain-millis, its
 * remaining work is failed explicitly). An evicted endpoint takes no new work and is destroyed when
 * its work in flight finished. Async events (port down or up, QP fatal, CQ error, device fatal) are
 * read from each device's async fd and acted on; a negative poll result marks the CQ broken.
 */
final class RdmaTransport implements Transport {
    private static final Logger LOG = Logger.getLogger(RdmaTransport.class.getName());
    private static final JsonMapper JSON = JsonMapper.builder().build();
    static final int CHAIN = 16;

    /** What the two sides exchange to connect a queue pair. */
    record Handshake(
            String segment,
            String device,
            String target,
            String linkLayer,
            int lid,
            String gid,
            int qpn,
            int mtu,
            int rdAtomic) {
        /** Refuses a handshake whose numbers no device could have produced, naming the field. */
        Handshake validated() {
            if (segment == null || !segment.matches("[A-Za-z0-9._-]{1,64}"))
                throw new IllegalArgumentException("rdma handshake: segment '" + segment + "'");
            if (device == null
                    || target == null
                    || !device.matches("[A-Za-z0-9_.-]{1,64}")
                    || !target.matches("[A-Za-z0-9_.-]{1,64}"))
                throw new IllegalArgumentException("rdma handshake: device names '" + device + "', '" + target + "'");
            if (!"INFINIBAND".equals(linkLayer) && !"ETHERNET".equals(linkLayer))
                throw new IllegalArgumentException("rdma handshake: link layer '" + linkLayer + "'");
            if (lid < 0 || lid > 0xffff) throw new IllegalArgumentException("rdma handshake: lid " + lid);
            if (gid == null || !gid.matches("[0-9a-f]{32}"))
                throw new IllegalArgumentException("rdma handshake: gid '" + gid + "'");
            if (qpn < 1 || qpn > 0xffffff) throw new IllegalArgumentException("rdma handshake: qpn " + qpn);
            if (mtu < 1 || mtu > 5) throw new IllegalArgumentException("rdma handshake: mtu enum " + mtu);
            if (rdAtomic < 1 || rdAtomic > 255) throw new IllegalArgumentException("rdma handshake: rd " + rdAtomic);
            return this;
        }
    }

    private enum State {
        NEW,
        CONNECTING,
        READY,
        DRAINING,
        CLOSED
    }

    private record Posted(Slice slice, Endpoint ep) {}

    /** A slice to fail; {@code cause}: this path failed it (counts towards a downgrade), else it was swept up. */
    private record Failure(Slice slice, String reason, boolean cause) {
        Failure(Slice slice, String reason) {
            this(slice, reason, false);
        }
    }

    /** A registered buffer: one memory region per device. */
    private record Region(long address, long length, MemorySegment[] mrs, int[] lkeys) {}

    /** One opened device and what the transport tracks about it. */
    final class Dev {
        final VerbsLib.Device d;
        final int index;
        final AtomicInteger credits;
        final Set<Endpoint> endpoints = ConcurrentHashMap.newKeySet();
        final ConcurrentLinkedQueue<Endpoint> starved = new ConcurrentLinkedQueue<>();
        volatile String down;
        volatile boolean cqBroken;

        Dev(VerbsLib.Device d, int index) {
            this.d = d;
            this.index = index;
            this.credits = new AtomicInteger(d.plan().cqEntries());
        }

        /** Takes up to n completion-queue credits; returns how many it got. */
        int acquire(int n) {
            while (true) {
                int c = credits.get();
                int take = Math.min(c, n);
                if (take <= 0) return 0;
                if (credits.compareAndSet(c, c - take)) return take;
            }
        }
    }

    private final VerbsLib verbs;
    private final RdmaSettings settings;
    private final List<Dev> devs = new ArrayList<>();
    private final Topology topology;
    private final String self;
    private final BiFunction<String, byte[], byte[]> rpc;
    private final SievePool<String, Endpoint> pool;
    private final Map<Long, Posted> posted = new ConcurrentHashMap<>();
    private final Map<String, MemorySegment> passive = new ConcurrentHashMap<>();
    private final ConcurrentSkipListMap<Long, Region> regions = new ConcurrentSkipListMap<>();
    private final Set<Endpoint> retiring = ConcurrentHashMap.newKeySet();
    private final AtomicLong nextWr = new AtomicLong(1);
    private final AtomicLong forcedFailures = new AtomicLong();
    private final ExecutorService connector;
    private final Thread poller;
    private final Thread events;
    private volatile Completion completion;
    private volatile boolean stopping;
    private volatile boolean closed;

    private RdmaTransport(
            VerbsLib verbs,
            RdmaSettings settings,
            List<VerbsLib.Device> devices,
            String self,
            int maxEndpoints,
            BiFunction<String, byte[], byte[]> rpc) {
        this.verbs = verbs;
        this.settings = settings;
        this.self = self;
        this.rpc = rpc;
        Map<String, Integer> numa = new LinkedHashMap<>();
        for (int i = 0; i < devices.size(); i++) {
            devs.add(new Dev(devices.get(i), i));
            numa.put(devices.get(i).name(), numaNode(settings, devices.get(i).name()));
        }
        this.topology = Topology.of(numa, Topology.numaNodes());
        this.pool = new SievePool<>(maxEndpoints, Endpoint::retire);
        AtomicInteger n = new AtomicInteger();
        this.connector = Executors.newCachedThreadPool(r -> Thread.ofPlatform()
                .daemon()
                .name("transfer-rdma-connect-" + n.incrementAndGet())
                .unstarted(r));
        this.poller = Thread.ofPlatform().daemon().name("transfer-rdma-poll").start(this::pollLoop);
        this.events = Thread.ofPlatform().daemon().name("transfer-rdma-events").start(this::eventLoop);
    }

    /**
     * Opens the configured devices of the verbs library; null (with the reason in {@code why}) when
     * the library is missing or no device can be used.
     */
    static RdmaTransport open(
            TransferConfig config, String self, BiFunction<String, byte[], byte[]> rpc, StringBuilder why) {
        List<String> skipped = new ArrayList<>();
        List<VerbsLib.Device> devices;
        VerbsLib verbs;
        try {
            verbs = new VerbsLib(config.verbsLibrary());
            devices = verbs.openAll(config.rdma(), RdmaAddressing.addressesOf(config.advertiseHost()), skipped);
        } catch (IllegalArgumentException e) {
            throw e; // a configuration error (unknown device, gid-index without an entry): refuse to start
        } catch (RuntimeException | LinkageError e) {
            why.append("cannot use ").append(config.verbsLibrary()).append(": ").append(e.getMessage());
            return null;
        }
        if (devices.isEmpty()) {
            why.append(skipped.isEmpty() ? Verbs.probe().reason() : "no usable device: " + skipped);
            return null;
        }
        RdmaTransport t = new RdmaTransport(verbs, config.rdma(), devices, self, config.maxEndpoints(), rpc);
        why.append(devices.size()).append(" device(s): ");
        List<String> parts = new ArrayList<>();
        for (VerbsLib.Device d : devices)
            parts.add(d.name() + " (" + d.linkLayer() + (d.lid() > 0 ? ", LID " + d.lid() : "") + ", MTU "
                    + RdmaAddressing.mtuBytes(d.activeMtu()) + ", GID " + d.gidIndex() + ": " + d.gidWhy() + ")");
        why.append(parts);
        if (!skipped.isEmpty()) why.append("; skipped ").append(skipped);
        return t;
    }

    @Override
    public String name() {
        return "rdma";
    }

    List<SegmentDescriptor.Device> descriptorDevices() {
        List<SegmentDescriptor.Device> out = new ArrayList<>();
        for (Dev d : devs)
            out.add(new SegmentDescriptor.Device(
                    d.d.name(), d.d.lid(), HexFormat.of().formatHex(d.d.gid())));
        return out;
    }

    Map<String, List<List<String>>> topologyMatrix() {
        return topology.matrix();
    }

    /** Registers a buffer on every device; returns its rkeys in device order (they go into the descriptor). */
    List<Integer> register(MemorySegment buffer) {
        MemorySegment[] mrs = new MemorySegment[devs.size()];
        int[] lkeys = new int[devs.size()];
        List<Integer> rkeys = new ArrayList<>();
        try {
            for (Dev d : devs) {
                mrs[d.index] = verbs.registerMemory(d.d, buffer);
                lkeys[d.index] = VerbsLib.lkey(mrs[d.index]);
                rkeys.add(VerbsLib.rkey(mrs[d.index]));
            }
        } catch (RuntimeException e) {
            for (MemorySegment mr : mrs) if (mr != null) verbs.deregister(mr);
            throw e;
        }
        regions.put(buffer.address(), new Region(buffer.address(), buffer.byteSize(), mrs, lkeys));
        return rkeys;
    }

    /** Deregisters a buffer: its rkeys stop working for every peer. */
    void deregister(MemorySegment buffer) {
        Region r = regions.remove(buffer.address());
        if (r != null) for (MemorySegment mr : r.mrs()) verbs.deregister(mr);
    }

    /** Memory regions currently registered (one per buffer and device). */
    int memoryRegions() {
        return regions.size() * devs.size();
    }

    int devicesDown() {
        int n = 0;
        for (Dev d : devs) if (d.down != null) n++;
        return n;
    }

    /** Work requests failed explicitly because their completion did not come within drain-millis. */
    long forcedFailures() {
        return forcedFailures.get();
    }

    @Override
    public boolean canReach(SegmentDescriptor local, SegmentDescriptor peer) {
        return !devs.isEmpty()
                && peer.transports().contains("rdma")
                && !peer.devices().isEmpty();
    }

    @Override
    public void submit(Peer peer, List<Slice> slices, Completion completion) {
        this.completion = completion;
        SegmentDescriptor d = peer.descriptor;
        Topology remoteTopology = new Topology(d.topology());
        for (Slice s : slices) {
            if (stopping) {
                completion.failed(s, "rdma transport is closing", true);
                continue;
            }
            String localName = topology.select(s.location, s.attempt);
            Dev dev = dev(localName);
            SegmentDescriptor.Buffer buf = d.bufferOf(s.remoteOffset, s.length());
            String remoteName = buf == null ? null : remoteTopology.select(buf.location(), s.attempt);
            int remote = remoteName == null ? -1 : indexOfRemote(d, remoteName);
            if (dev == null || remote < 0 || buf.rkeys().size() <= remote) {
                completion.failed(
                        s,
                        "no rdma path to '" + d.name() + "' for [" + s.remoteOffset + ", +" + s.length() + ")",
                        true);
                continue;
            }
            if (dev.down != null) {
                completion.failed(s, "rdma device " + dev.d.name() + " is unusable: " + dev.down, true);
                continue;
            }
            String key = d.name() + "@" + localName + "/" + remoteName;
            Endpoint ep = pool.get(key, k -> new Endpoint(k, dev, d, remoteName));
            ep.start();
            ep.post(s, d.baseAddress() + s.remoteOffset, buf.rkeys().get(remote));
        }
    }

    private Dev dev(String name) {
        for (Dev d : devs) if (d.d.name().equals(name)) return d;
        return null;
    }

    private static int indexOfRemote(SegmentDescriptor d, String device) {
        for (int i = 0; i < d.devices().size(); i++)
            if (d.devices().get(i).name().equals(device)) return i;
        return -1;
    }

    private Handshake ours(Dev dev, String target, int qpn) {
        VerbsLib.Device d = dev.d;
        return new Handshake(
                self,
                d.name(),
                target,
                d.linkLayer().name(),
                d.lid(),
                HexFormat.of().formatHex(d.gid()),
                qpn,
                d.activeMtu(),
                d.plan().rdAtomic());
    }

    private static VerbsLib.Remote remoteOf(Dev local, Handshake h) {
        if (!h.linkLayer().equals(local.d.linkLayer().name()))
            throw new IllegalStateException("link layers differ: " + local.d.name() + " is " + local.d.linkLayer()
                    + ", the peer's " + h.device() + " is " + h.linkLayer());
        return new VerbsLib.Remote(h.qpn(), h.lid(), HexFormat.of().parseHex(h.gid()), h.mtu(), h.rdAtomic());
    }

    /** The passive side of a handshake (on the control channel's thread): a connected QP on the requested device. */
    byte[] accept(byte[] request) {
        Handshake h = JSON.readValue(request, Handshake.class).validated();
        if (stopping) throw new IllegalStateException("rdma transport is closing");
        Dev dev = dev(h.target());
        if (dev == null) throw new IllegalArgumentException("no rdma device '" + h.target() + "' here");
        if (dev.down != null)
            throw new IllegalStateException("rdma device " + h.target() + " is unusable: " + dev.down);
        VerbsLib.Remote remote = remoteOf(dev, h);
        MemorySegment qp = verbs.createRcQp(dev.d, 1);
        try {
            verbs.connect(dev.d, qp, remote, settings);
        } catch (RuntimeException e) {
            verbs.destroyQp(qp);
            throw e;
        }
        MemorySegment old = passive.put(h.segment() + "@" + h.device() + "/" + h.target(), qp);
        if (old != null) verbs.destroyQp(old);
        return JSON.writeValueAsBytes(ours(dev, h.device(), VerbsLib.qpNum(qp)));
    }

    @Override
    public void forget(String peer) {
        for (Endpoint ep : pool.values())
            if (ep.peer.name().equals(peer)) ep.breakEndpoint("peer '" + peer + "' changed");
        passive.entrySet().removeIf(e -> {
            if (!e.getKey().startsWith(peer + "@")) return false;
            verbs.destroyQp(e.getValue());
            return true;
        });
    }

    /** One RC queue pair to one device of one peer, with work requests prepared once and reused. */
    final class Endpoint {
        final String key;
        final Dev dev;
        final SegmentDescriptor peer;
        final String remoteDevice;
        private final ArrayDeque<Object[]> waiting = new ArrayDeque<>();
        private final Set<Long> inflight = new HashSet<>();
        private State state = State.NEW;
        private volatile MemorySegment qp;
        private Arena arena;
        private MemorySegment wrs;
        private MemorySegment sges;
        private MemorySegment bad;
        private int outstanding;
        private boolean starving;
        private boolean forced;
        private boolean retired;
        private long deadline;

        /** Cheap (no native call): the pool creates endpoints under its lock. */
        Endpoint(String key, Dev dev, SegmentDescriptor peer, String remoteDevice) {
            this.key = key;
            this.dev = dev;
            this.peer = peer;
            this.remoteDevice = remoteDevice;
        }

        void start() {
            synchronized (this) {
                if (state != State.NEW) return;
                state = State.CONNECTING;
            }
            dev.endpoints.add(this);
            try {
                connector.execute(this::connect);
            } catch (RejectedExecutionException e) {
                breakEndpoint("rdma transport is closing");
            }
        }

        /** The handshake, on a connector thread. */
        private void connect() {
            MemorySegment q = null;
            try {
                q = verbs.createRcQp(dev.d, dev.d.plan().sendWr());
                byte[] reply =
                        rpc.apply(peer.name(), JSON.writeValueAsBytes(ours(dev, remoteDevice, VerbsLib.qpNum(q))));
                Handshake h = JSON.readValue(reply, Handshake.class).validated();
                verbs.connect(dev.d, q, remoteOf(dev, h), settings);
            } catch (RuntimeException e) {
                if (q != null) verbs.destroyQp(q);
                List<Failure> failures = new ArrayList<>();
                synchronized (this) {
                    breakLocked(
                            "rdma handshake with '" + peer.name() + "' (" + key + ") failed: " + e.getMessage(),
                            failures,
                            true); // the path failed each waiting slice: they count towards a downgrade
                    destroyLocked();
                }
                fire(failures);
                return;
            }
            List<Failure> failures = new ArrayList<>();
            synchronized (this) {
                if (state != State.CONNECTING) { // broken or retired while connecting: nothing was posted on it
                    verbs.destroyQp(q);
                    destroyLocked();
                    return;
                }
                qp = q;
                arena = Arena.ofShared();
                prepare();
                state = State.READY;
                drain(failures);
                finishIfDone();
            }
            fire(failures);
        }

        private void prepare() {
            var wl = VerbsLayouts.IBV_SEND_WR;
            wrs = arena.allocate(wl.byteSize() * CHAIN, 8);
            sges = arena.allocate(VerbsLayouts.IBV_SGE.byteSize() * CHAIN, 8);
            bad = arena.allocate(ADDRESS);
            for (int i = 0; i < CHAIN; i++) { // fixed parts, once
                MemorySegment wr = wrs.asSlice(i * wl.byteSize(), wl.byteSize());
                wr.set(
                        ADDRESS,
                        WR_SG_LIST,
                        sges.asSlice(i * VerbsLayouts.IBV_SGE.byteSize(), VerbsLayouts.IBV_SGE.byteSize()));
                wr.set(JAVA_INT, WR_NUM_SGE, 1);
                wr.set(JAVA_INT, WR_SEND_FLAGS, VerbsLib.SEND_SIGNALED);
            }
        }

        /** Posts a slice now, queues it while connecting or while the QP or the device is full. */
        void post(Slice s, long remoteAddr, int rkey) {
            List<Failure> failures = new ArrayList<>();
            synchronized (this) {
                if (state == State.DRAINING || state == State.CLOSED)
                    failures.add(new Failure(s, "rdma endpoint " + key + " is closed"));
                else {
                    waiting.add(new Object[] {s, remoteAddr, rkey});
                    if (state == State.READY) drain(failures);
                }
            }
            fire(failures);
        }

        /** Fills the prepared work requests from the queue and posts them as chains. Holds the lock. */
        private void drain(List<Failure> failures) {
            int limit = dev.d.plan().sendWr();
            long wrSize = VerbsLayouts.IBV_SEND_WR.byteSize(), sgeSize = VerbsLayouts.IBV_SGE.byteSize();
            while (state == State.READY && !waiting.isEmpty() && outstanding < limit) {
                int want = Math.min(CHAIN, Math.min(waiting.size(), limit - outstanding));
                int n = dev.acquire(want);
                if (n == 0) { // the device's CQ is full of work in flight: wait for completions
                    if (!starving) {
                        starving = true;
                        dev.starved.add(this);
                    }
                    if (dev.credits.get() > 0) continue; // a completion came in meanwhile
                    return;
                }
                long[] ids = new long[n];
                int filled = 0;
                for (int i = 0; i < n; i++) {
                    Object[] w = waiting.poll();
                    Slice s = (Slice) w[0];
                    Region r = regionOf(s.local);
                    if (r == null) {
                        failures.add(new Failure(s, "local memory is not registered for rdma"));
                        continue;
                    }
                    long id = nextWr.getAndIncrement();
                    ids[filled] = id;
                    posted.put(id, new Posted(s, this));
                    inflight.add(id);
                    long wo = filled * wrSize, so = filled * sgeSize;
                    wrs.set(JAVA_LONG, wo + WR_ID, id);
                    wrs.set(JAVA_INT, wo + WR_OPCODE, s.write ? VerbsLib.WR_RDMA_WRITE : VerbsLib.WR_RDMA_READ);
                    wrs.set(JAVA_LONG, wo + WR_REMOTE_ADDR, (long) w[1]);
                    wrs.set(JAVA_INT, wo + WR_RKEY, (int) w[2]);
                    wrs.set(ADDRESS, wo + WR_NEXT, MemorySegment.NULL);
                    if (filled > 0) wrs.set(ADDRESS, wo - wrSize + WR_NEXT, wrs.asSlice(wo, wrSize));
                    sges.set(JAVA_LONG, so + SGE_ADDR, s.local.address());
                    sges.set(JAVA_INT, so + SGE_LENGTH, (int) s.length());
                    sges.set(JAVA_INT, so + SGE_LKEY, r.lkeys()[dev.index]);
                    filled++;
                }
                if (filled < n) dev.credits.addAndGet(n - filled);
                if (filled == 0) continue;
                int rc = VerbsOps.postSend(qp, wrs, bad);
                if (rc != 0) {
                    // nothing of a failed chain is trusted to be queued: take it back, then break the endpoint
                    for (int i = 0; i < filled; i++) {
                        Posted p = posted.remove(ids[i]);
                        inflight.remove(ids[i]);
                        if (p != null)
                            failures.add(new Failure(p.slice(), "ibv_post_send on " + key + " failed: " + rc, true));
                    }
                    dev.credits.addAndGet(filled);
                    breakLocked("ibv_post_send failed: " + rc, failures, false);
                    return;
                }
                outstanding += filled;
            }
        }

        /** The poller reaped one of this endpoint's completions. */
        void completed(long id, int status, List<Failure> failures) {
            synchronized (this) {
                inflight.remove(id);
                outstanding--;
                if (status != VerbsLib.WC_SUCCESS && state == State.READY)
                    breakLocked("work completion status " + status, failures, false);
                if (state == State.READY) drain(failures);
                finishIfDone();
            }
        }

        void resume() {
            List<Failure> failures = new ArrayList<>();
            synchronized (this) {
                starving = false;
                drain(failures);
            }
            fire(failures);
        }

        /** A failed completion, async event or post: the QP goes to ERROR (its work flushes), it leaves the pool. */
        void breakEndpoint(String reason) {
            List<Failure> failures = new ArrayList<>();
            synchronized (this) {
                breakLocked(reason, failures, false);
            }
            fire(failures);
        }

        /** A retired endpoint whose work all finished, or a broken one drained: the QP can go. */
        private void finishIfDone() {
            if (outstanding > 0) return;
            if (state == State.DRAINING || (retired && state == State.READY && waiting.isEmpty())) destroyLocked();
        }

        private void breakLocked(String reason, List<Failure> failures, boolean cause) {
            if (state == State.DRAINING || state == State.CLOSED) return;
            boolean connected = state == State.READY, connecting = state == State.CONNECTING;
            LOG.fine(() -> "rdma endpoint " + key + " broke: " + reason);
            state = State.DRAINING;
            pool.remove(key, this);
            for (Object[] w : waiting)
                failures.add(new Failure((Slice) w[0], "rdma endpoint " + key + " broke: " + reason, cause));
            waiting.clear();
            if (connected && outstanding > 0) {
                try {
                    verbs.toError(qp);
                } catch (RuntimeException e) {
                    LOG.fine("moving " + key + " to ERROR: " + e.getMessage());
                }
            }
            deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(settings.drainMillis());
            if (outstanding == 0 && !connecting) destroyLocked();
            else retiring.add(this); // the connector or the poller finishes it
        }

        /**
         * Eviction or close: the pool hands it out no more, but what it already holds (queued or in
         * flight) is finished; then the QP is destroyed. Past drain-millis it breaks and its work is
         * retried elsewhere.
         */
        void retire() {
            synchronized (this) {
                if (retired || state == State.DRAINING || state == State.CLOSED) return;
                retired = true;
                pool.remove(key, this);
                deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(settings.drainMillis());
                if (state == State.NEW) destroyLocked();
                else if (state == State.READY && outstanding == 0 && waiting.isEmpty()) destroyLocked();
                else retiring.add(this);
            }
        }

        /** Past the deadline: first flush the QP, then fail what is still in flight and destroy it. */
        void checkDeadline(long now, List<Failure> failures) {
            synchronized (this) {
                if (now < deadline || state == State.CLOSED || state == State.CONNECTING) return;
                if (state == State.READY) { // retired, and still not done: break it, its work goes elsewhere
                    breakLocked("retired endpoint still busy after " + settings.drainMillis() + " ms", failures, false);
                    return;
                }
                if (outstanding > 0 && !forced && qp != null) {
                    forced = true;
                    try {
                        verbs.toError(qp);
                    } catch (RuntimeException e) {
                        LOG.fine("moving " + key + " to ERROR: " + e.getMessage());
                    }
                    deadline = now + TimeUnit.MILLISECONDS.toNanos(settings.drainMillis());
                    return;
                }
                failInflight("no completion within " + settings.drainMillis() + " ms", failures);
                if (qp != null || outstanding == 0) destroyLocked();
            }
        }

        /** Fails every request in flight explicitly (their completions will never be reaped). Holds the lock. */
        private void failInflight(String reason, List<Failure> failures) {
            for (Long id : inflight) {
                Posted p = posted.remove(id);
                if (p != null) {
                    failures.add(new Failure(p.slice(), "rdma endpoint " + key + ": " + reason));
                    dev.credits.incrementAndGet();
                    forcedFailures.incrementAndGet();
                }
            }
            inflight.clear();
            outstanding = 0;
        }

        private void destroyLocked() {
            if (state == State.CLOSED) return;
            state = State.CLOSED;
            if (qp != null) verbs.destroyQp(qp);
            qp = null;
            if (arena != null) arena.close();
            arena = null;
            dev.endpoints.remove(this);
            retiring.remove(this);
        }
    }

    private Region regionOf(MemorySegment local) {
        var e = regions.floorEntry(local.address());
        if (e == null) return null;
        Region r = e.getValue();
        return local.address() + local.byteSize() <= r.address() + r.length() ? r : null;
    }

    private void fire(List<Failure> failures) {
        Completion c = completion;
        for (Failure f : failures) {
            if (f.cause()) c.failed(f.slice(), f.reason(), true);
            else c.swept(f.slice(), f.reason());
        }
    }

    private void pollLoop() {
        MemorySegment wc = Arena.global().allocate(VerbsLayouts.IBV_WC.byteSize() * 16, 8);
        long wcSize = VerbsLayouts.IBV_WC.byteSize();
        int idle = 0;
        long lastCheck = System.nanoTime();
        List<Failure> failures = new ArrayList<>();
        while (!closed) {
            int got = 0;
            for (Dev d : devs) {
                if (d.cqBroken) continue;
                int n = VerbsOps.pollCq(d.d.cq(), 16, wc);
                if (n < 0) {
                    cqBroken(d, "ibv_poll_cq returned " + n);
                    continue;
                }
                for (int i = 0; i < n; i++) {
                    long id = wc.get(JAVA_LONG, i * wcSize + WC_ID);
                    int status = wc.get(JAVA_INT, i * wcSize + WC_STATUS);
                    Posted p = posted.remove(id);
                    if (p == null) continue; // failed explicitly before (its credit went back then)
                    d.credits.incrementAndGet();
                    failures.clear();
                    p.ep().completed(id, status, failures);
                    fire(failures);
                    if (status == VerbsLib.WC_SUCCESS) completion.done(p.slice());
                    else if (status == VerbsLib.WC_WR_FLUSH_ERR) // a consequence of the error that broke the QP
                    completion.swept(p.slice(), "rdma work request flushed: endpoint " + p.ep().key + " broke");
                    else
                        completion.failed(
                                p.slice(), "rdma work completion status " + status + " on " + p.ep().key, true);
                }
                got += n;
                Endpoint e;
                while (d.credits.get() > 0 && (e = d.starved.poll()) != null) e.resume();
            }
            long now = System.nanoTime();
            if (now - lastCheck > 20_000_000L && !retiring.isEmpty()) {
                lastCheck = now;
                failures.clear();
                for (Endpoint e : List.copyOf(retiring)) e.checkDeadline(now, failures);
                fire(failures);
            }
            if (got > 0) idle = 0;
            else if (++idle > 64)
                LockSupport.parkNanos(posted.isEmpty() ? 1_000_000 : 20_000); // back off instead of spinning a core
        }
    }

    /** The device's CQ can no longer be reaped: every request in flight on it fails now, the device is left out. */
    private void cqBroken(Dev d, String why) {
        if (d.cqBroken) return;
        d.cqBroken = true;
        d.down = "completion queue error (" + why + ")";
        LOG.warning("rdma device " + d.d.name() + ": " + d.down + "; its transfers move to other paths");
        List<Failure> failures = new ArrayList<>();
        for (Endpoint ep : List.copyOf(d.endpoints)) {
            synchronized (ep) {
                ep.breakLocked(d.down, failures, false);
                ep.failInflight(d.down, failures);
                ep.destroyLocked();
            }
        }
        fire(failures);
    }

    private void eventLoop() {
        while (!closed) {
            for (Dev d : devs) {
                VerbsLib.AsyncEvent ev;
                try {
                    ev = verbs.nextAsyncEvent(d.d, Math.max(1, 50 / devs.size()));
                } catch (RuntimeException e) {
                    LOG.warning(e.getMessage());
                    LockSupport.parkNanos(50_000_000L);
                    continue;
                }
                if (ev != null) onEvent(d, ev);
            }
        }
    }

    private void onEvent(Dev d, VerbsLib.AsyncEvent ev) {
        switch (ev.type()) {
            case VerbsLib.EVENT_PORT_ERR -> {
                d.down = "port " + d.d.port() + " is down";
                LOG.warning("rdma device " + d.d.name() + ": " + d.down + "; transfers move to other paths");
                for (Endpoint ep : List.copyOf(d.endpoints)) ep.breakEndpoint(d.down);
            }
            case VerbsLib.EVENT_PORT_ACTIVE -> {
                if (!d.cqBroken) {
                    d.down = null;
                    LOG.info("rdma device " + d.d.name() + ": port " + d.d.port() + " is active again");
                }
            }
            case VerbsLib.EVENT_QP_FATAL, VerbsLib.EVENT_QP_REQ_ERR, VerbsLib.EVENT_QP_ACCESS_ERR -> {
                for (Endpoint ep : List.copyOf(d.endpoints)) {
                    MemorySegment q = ep.qp;
                    if (q != null && q.address() == ev.element()) ep.breakEndpoint("async event " + ev.type());
                }
                passive.entrySet().removeIf(e -> {
                    if (e.getValue().address() != ev.element()) return false;
                    verbs.destroyQp(e.getValue());
                    return true;
                });
            }
            case VerbsLib.EVENT_CQ_ERR -> cqBroken(d, "IBV_EVENT_CQ_ERR");
            case VerbsLib.EVENT_DEVICE_FATAL -> cqBroken(d, "IBV_EVENT_DEVICE_FATAL");
            default -> LOG.fine("rdma device " + d.d.name() + ": async event " + ev.type());
        }
    }

    private static final long WR_ID = off(VerbsLayouts.IBV_SEND_WR, "wr_id");
    private static final long WR_NEXT = off(VerbsLayouts.IBV_SEND_WR, "next");
    private static final long WR_SG_LIST = off(VerbsLayouts.IBV_SEND_WR, "sg_list");
    private static final long WR_NUM_SGE = off(VerbsLayouts.IBV_SEND_WR, "num_sge");
    private static final long WR_OPCODE = off(VerbsLayouts.IBV_SEND_WR, "opcode");
    private static final long WR_SEND_FLAGS = off(VerbsLayouts.IBV_SEND_WR, "send_flags");
    private static final long WR_REMOTE_ADDR = VerbsLayouts.IBV_SEND_WR.byteOffset(
            MemoryLayout.PathElement.groupElement("wr"),
            MemoryLayout.PathElement.groupElement("rdma"),
            MemoryLayout.PathElement.groupElement("remote_addr"));
    private static final long WR_RKEY = VerbsLayouts.IBV_SEND_WR.byteOffset(
            MemoryLayout.PathElement.groupElement("wr"),
            MemoryLayout.PathElement.groupElement("rdma"),
            MemoryLayout.PathElement.groupElement("rkey"));
    private static final long SGE_ADDR = off(VerbsLayouts.IBV_SGE, "addr");
    private static final long SGE_LENGTH = off(VerbsLayouts.IBV_SGE, "length");
    private static final long SGE_LKEY = off(VerbsLayouts.IBV_SGE, "lkey");
    private static final long WC_ID = off(VerbsLayouts.IBV_WC, "wr_id");
    private static final long WC_STATUS = off(VerbsLayouts.IBV_WC, "status");

    private static long off(StructLayout l, String f) {
        return l.byteOffset(MemoryLayout.PathElement.groupElement(f));
    }

    private static int numaNode(RdmaSettings s, String device) {
        try {
            return Integer.parseInt(
                    Files.readString(s.sysfsRoot().resolve(device).resolve("device/numa_node"))
                            .trim());
        } catch (Exception e) {
            return -1;
        }
    }

    /**
     * Takes no new work, lets what is in flight finish (up to drain-millis, then flushes and fails the
     * rest), then stops its threads and frees every QP, memory region, CQ, PD and context.
     */
    @Override
    public void close() {
        stopping = true;
        for (Endpoint ep : pool.values()) ep.retire();
        long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(3 * settings.drainMillis());
        while (!retiring.isEmpty() && System.nanoTime() < until) LockSupport.parkNanos(2_000_000);
        connector.shutdown();
        try {
            connector.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        closed = true;
        try {
            poller.join(2000);
            events.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        List<Failure> failures = new ArrayList<>();
        for (Dev d : devs)
            for (Endpoint ep : List.copyOf(d.endpoints))
                synchronized (ep) {
                    ep.failInflight("the transport closed", failures);
                    ep.destroyLocked();
                }
        if (completion != null) fire(failures);
        passive.values().forEach(verbs::destroyQp);
        passive.clear();
        for (Region r : regions.values()) for (MemorySegment mr : r.mrs()) verbs.deregister(mr);
        regions.clear();
        for (Dev d : devs) verbs.close(d.d, List.of());
    }
}
