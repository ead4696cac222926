package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.SegmentFiles;
import dev.mooncakej.kvtransfer.spi.Topology;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.spi.Transport;
import dev.mooncakej.kvtransfer.spi.TransportContext;
import dev.mooncakej.kvtransfer.spi.Transports;
import dev.mooncakej.kvtransfer.spi.WriteGuard;
import dev.mooncakej.kvtransfer.tcp.TransferServer;
import dev.mooncakej.kvtransfer.tcp.Wire;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.logging.Logger;

/**
 * The transfer engine (Mooncake's Transfer Engine in Java terms). One segment per process, backed by a
 * shared-memory file; memory registered in it with a location; the descriptor published in the
 * metadata store. Batches of READ/WRITE requests against other segments are checked (a request
 * outside registered memory, local or remote, is INVALID and touches nothing), cut into slices, and
 * moved by the transport negotiated for each peer (rdma when both have devices, shm on the same host,
 * else tcp), with failed slices retried on another path, a downgrade to the next transport after
 * repeated errors, and a deadline after which unfinished requests are TIMEOUT.
 */
public final class TransferEngine implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(TransferEngine.class.getName());

    private final String name;
    private final SegmentMetadata metadata;
    private final TransferConfig config;
    private final PeerAuth auth;
    private final Arena arena = Arena.ofShared();
    private final Path shmFile;
    private final MemorySegment segment;
    private final List<SegmentDescriptor.Buffer> buffers = new ArrayList<>();
    private final Map<String, Transport> transports = new LinkedHashMap<>();
    private final Map<String, EnginePeer> peers = new ConcurrentHashMap<>();
    /** Unfinished batches in submission order; every batch has the same timeout, so deadlines are in order too. */
    private final ConcurrentLinkedQueue<TransferBatch> pending = new ConcurrentLinkedQueue<>();

    private final ScheduledExecutorService timer;
    private final ControlChannel control;
    private final TransferServer server;
    private final String hostId;
    private final AutoCloseable watch;
    private final Transport.Completion completion = new SliceOutcomes(this::downgrade, this::retryLimit);
    /** How each configured transport opened, or why not, by name. */
    private final Map<String, String> statuses = new LinkedHashMap<>();

    private volatile Function<byte[], Byte> notifyHandler = p -> Wire.INVALID;
    private volatile SegmentDescriptor self;
    private long next;

    /**
     * @param name          unique in the cluster ([A-Za-z0-9._-], 1-64)
     * @param segmentBytes  size of this process's segment (register ranges of it with {@link #allocate})
     */
    public TransferEngine(String name, SegmentMetadata metadata, long segmentBytes, TransferConfig config) {
        if (name == null || !name.matches("[A-Za-z0-9._-]{1,64}"))
            throw new IllegalArgumentException("segment name '" + name + "': expected 1-64 of [A-Za-z0-9._-]");
        if (segmentBytes <= 0) throw new IllegalArgumentException("segment size must be positive, got " + segmentBytes);
        this.name = name;
        this.metadata = metadata;
        this.config = config;
        this.auth = new PeerAuth(config.secret());
        this.hostId = SegmentFile.hostId();
        this.shmFile = SegmentFiles.segmentFile(config.shmDir(), name);
        this.segment = SegmentFile.create(shmFile, segmentBytes, arena);
        for (String t : config.transports()) {
            StringBuilder why = new StringBuilder();
            Transport opened =
                    Transports.provider(t).open(new TransportContext(name, config, auth, this::handshake, why));
            statuses.put(t, why.toString());
            if (opened == null)
                LOG.info("transfer engine '" + name + "': " + t + " unavailable (" + why
                        + "), falling back to the other transports");
            else transports.put(t, opened);
        }
        this.timer = Executors.newSingleThreadScheduledExecutor(
                r -> Thread.ofPlatform().daemon().name("transfer-timer-" + name).unstarted(r));
        this.control = new ControlChannel(name, metadata, auth, timer);
        long tick = Math.max(1, Math.min(50, config.timeout().toMillis() / 10));
        timer.scheduleWithFixedDelay(this::expireOverdue, tick, tick, TimeUnit.MILLISECONDS);
        this.server = new TransferServer(
                config.listenHost(), config.listenPort(), auth, segment, () -> self, p -> notifyHandler.apply(p));
        for (Transport t : transports.values()) if (t.acceptsHandshakes()) server.onHandshake(t::acceptHandshake);
        publish();
        this.watch = metadata.watch((peer, d) -> {
            EnginePeer old = peers.remove(peer);
            if (old != null && (d == null || !d.equals(old.descriptor)))
                transports.values().forEach(t -> t.forget(peer));
        });
    }

    public String name() {
        return name;
    }

    public MemorySegment segment() {
        return segment;
    }

    public SegmentDescriptor descriptor() {
        return self;
    }

    public TransferConfig config() {
        return config;
    }
    /** Why rdma is or is not in use (e.g. "no device: errno 38 (ENOSYS ...)"). */
    public String rdmaStatus() {
        return statuses.getOrDefault("rdma", "not enabled");
    }

    /** A transport's counter ({@link Transport#counter}); 0 when that transport is not open. */
    public long transportCounter(String transport, String counter) {
        Transport t = transports.get(transport);
        return t == null ? 0 : t.counter(counter);
    }
    /** rdma devices currently unusable (port down, CQ or device error); 0 without rdma. */
    public int rdmaDevicesDown() {
        return (int) transportCounter("rdma", "devices-down");
    }

    /** rdma work requests failed explicitly because no completion came within drain-millis. */
    public long rdmaForcedFailures() {
        return transportCounter("rdma", "forced-failures");
    }

    /** rdma memory regions registered (registered buffers times devices); what a peer's rkeys can reach. */
    public int rdmaMemoryRegions() {
        return (int) transportCounter("rdma", "memory-regions");
    }

    /** Port of the tcp transport and control channel. */
    public int port() {
        return server.port();
    }

    public long bytesReceived() {
        return server.bytesIn();
    }

    public long bytesServed() {
        return server.bytesOut();
    }
    /** Connections closed because a peer failed the challenge or sent a malformed group. */
    public long refusedConnections() {
        return server.refused();
    }

    /** Registers a fresh 64-byte-aligned range of this segment at {@code location} and publishes it. */
    public synchronized MemorySegment allocate(long bytes, String location) {
        long off = (next + 63) & ~63L;
        if (bytes <= 0 || off + bytes > segment.byteSize()) {
            throw new IllegalArgumentException("cannot register " + bytes + " bytes: the segment has "
                    + (segment.byteSize() - off) + " left (raise its size)");
        }
        MemorySegment memory = segment.asSlice(off, bytes);
        // rdma: only registered buffers are memory regions, so a peer reaches these ranges and nothing else
        List<Integer> rkeys = List.of();
        for (Transport t : transports.values()) {
            List<Integer> keys = t.register(memory);
            if (!keys.isEmpty()) rkeys = keys;
        }
        next = off + bytes;
        buffers.add(new SegmentDescriptor.Buffer(off, bytes, location, rkeys));
        publish();
        return memory;
    }

    /** Unregisters a buffer returned by {@link #allocate}; peers' requests to it are invalid from now on. */
    public synchronized void unregister(MemorySegment buffer) {
        long off = offsetOf(buffer);
        if (!buffers.removeIf(b -> b.offset() == off && b.length() == buffer.byteSize())) {
            throw new IllegalArgumentException(
                    "no registered buffer at offset " + off + " of " + buffer.byteSize() + " bytes");
        }
        publish();
        for (Transport t : transports.values()) t.deregister(segment.asSlice(off, buffer.byteSize()));
    }

    /** Offset of memory inside this segment (what a request's local offset is). */
    public long offsetOf(MemorySegment memory) {
        long off = memory.address() - segment.address();
        if (off < 0 || off + memory.byteSize() > segment.byteSize())
            throw new IllegalArgumentException(
                    "memory at 0x" + Long.toHexString(memory.address()) + " is not inside segment '" + name + "'");
        return off;
    }

    private synchronized void publish() {
        Transport withDevices = transports.values().stream()
                .filter(t -> !t.devices().isEmpty())
                .findFirst()
                .orElse(null);
        List<SegmentDescriptor.Buffer> bufs = List.copyOf(buffers);
        self = new SegmentDescriptor(
                name,
                hostId,
                config.advertiseHost(),
                server == null ? 0 : server.port(),
                shmFile.toString(),
                segment.address(),
                segment.byteSize(),
                List.copyOf(transports.keySet()),
                withDevices == null ? List.of() : withDevices.devices(),
                withDevices == null || withDevices.topology() == null
                        ? Topology.of(Map.of(), Topology.numaNodes()).matrix()
                        : withDevices.topology(),
                bufs);
        if (server != null) metadata.publish(self);
    }

    /**
     * Decides, for every WRITE a peer sends over tcp, whether its range may be written now (the
     * receiver-side fence: a range whose reservation was dropped is refused as invalid). One-sided
     * transports (shm, rdma) do not pass through here: their writers are fenced by acknowledgement.
     */
    public void guardWrites(WriteGuard guard) {
        server.guardWrites(guard);
    }

    /**
     * The tcp fence's barrier: read {@link #writeGroupsAccepted()} after a guard stops permitting a
     * range; once {@link #writesLandedThrough} that number, no tcp byte aimed at the range can land.
     */
    public long writeGroupsAccepted() {
        return server.writeGroupsAccepted();
    }

    /**
     * As {@link #writesLandedThrough(long)}, for the groups of one writer only: with a guard that
     * permits a range to its claimant alone, no other writer's group can touch that range.
     */
    public boolean writesLandedThrough(String writer, long seq) {
        return server.writesLandedThrough(writer, seq);
    }

    /**
     * Closes every tcp connection a writer has open to this engine's server: its group in flight is
     * dropped and lands nothing more (a writer that stalled past its fence's deadline). Returns how many
     * were closed. One-sided transports (shm, rdma) cannot be cut off this way.
     */
    public int disconnectWriter(String writer) {
        return server.disconnect(writer);
    }

    public boolean writesLandedThrough(long seq) {
        return server.writesLandedThrough(seq);
    }

    /** Handles notifications from peers (after their writes completed); returns a status byte. */
    public void onNotify(Function<byte[], Byte> handler) {
        this.notifyHandler = handler;
    }

    /** Opens a peer's segment: looks it up and negotiates the transport. */
    public String openSegment(String segmentName) {
        EnginePeer p = peer(segmentName);
        if (p == null) throw new IllegalArgumentException("segment '" + segmentName + "' is not published");
        return p.transport.name();
    }

    /** The transport used for a peer now, or null when none is open. */
    public String transportFor(String segmentName) {
        EnginePeer p = peers.get(segmentName);
        return p == null ? null : p.transport.name();
    }

    private EnginePeer peer(String segmentName) {
        EnginePeer p = peers.get(segmentName);
        if (p != null) return p;
        SegmentDescriptor d = metadata.lookup(segmentName).orElse(null);
        if (d == null) return null;
        Transport t = negotiate(d, null);
        if (t == null) return null;
        return peers.computeIfAbsent(segmentName, k -> new EnginePeer(d, t));
    }

    /**
     * After {@code reason}, {@code peer} moves from {@code used} to the next transport that reaches it
     * once it had {@code downgrade-after} errors in a row there (one moves it, whichever thread sees it).
     */
    private void downgrade(EnginePeer peer, Transport used, String reason) {
        if (peer.consecutiveErrors.incrementAndGet() < config.downgradeAfter()) return;
        synchronized (peer) {
            if (peer.transport != used || peer.consecutiveErrors.get() < config.downgradeAfter()) return;
            Transport next = negotiate(peer.descriptor, used);
            if (next == null) return;
            LOG.warning("transfer to '" + peer.name() + "': " + peer.consecutiveErrors.get() + " errors on "
                    + used.name() + " (" + reason + "), downgrading to " + next.name());
            peer.transport = next;
            peer.consecutiveErrors.set(0);
        }
    }

    private int retryLimit() {
        return config.retryLimit();
    }

    /** The first transport, in this engine's order of preference after {@code after}, that reaches the peer. */
    private Transport negotiate(SegmentDescriptor d, Transport after) {
        boolean past = after == null;
        for (Transport t : transports.values()) {
            if (past && t.canReach(self, d)) return t;
            if (t == after) past = true;
        }
        return null;
    }

    /** Submits a batch; the returned batch's future completes when every request has its final status. */
    public TransferBatch submit(List<TransferRequest> requests) {
        TransferBatch batch = new TransferBatch(requests.size());
        SegmentDescriptor me = self;
        Map<EnginePeer, List<BatchSlice>> byPeer = new HashMap<>();
        for (int i = 0; i < requests.size(); i++) {
            TransferRequest r = requests.get(i);
            EnginePeer peer = peer(r.target());
            if (peer == null) {
                batch.finish(
                        i,
                        TransferBatch.Status.FAILED,
                        metadata.lookup(r.target()).isPresent()
                                ? "no common transport with segment '" + r.target() + "' (ours: " + transports.keySet()
                                        + ")"
                                : "segment '" + r.target() + "' is not published");
                continue;
            }
            SegmentDescriptor.Buffer localBuf = me.bufferOf(r.localOffset(), r.length());
            if (r.length() <= 0 || localBuf == null) {
                batch.finish(
                        i,
                        TransferBatch.Status.INVALID,
                        "local range [" + r.localOffset() + ", +" + r.length()
                                + ") is not inside a registered buffer of this segment '" + name + "'");
                continue;
            }
            if (!peer.descriptor.registered(r.targetOffset(), r.length())) {
                batch.finish(
                        i,
                        TransferBatch.Status.INVALID,
                        "remote range [" + r.targetOffset() + ", +" + r.length()
                                + ") is not inside a registered buffer of '" + r.target() + "'");
                continue;
            }
            List<BatchSlice> out = byPeer.computeIfAbsent(peer, k -> new ArrayList<>());
            int count = 0;
            long pos = 0, len = r.length(), slice = peer.transport.sliceBytes(len, config);
            while (pos < len) {
                long n = len - pos <= slice + Math.min(slice, config.fragmentLimit()) ? len - pos : slice;
                out.add(new BatchSlice(
                        batch,
                        i,
                        r.opcode() == TransferRequest.Opcode.WRITE,
                        segment.asSlice(r.localOffset() + pos, n),
                        r.targetOffset() + pos,
                        localBuf.location(),
                        peer));
                pos += n;
                count++;
            }
            batch.expectSlices(i, count);
        }
        if (!byPeer.isEmpty()) {
            batch.deadlineNanos = System.nanoTime() + config.timeout().toNanos();
            pending.add(batch);
        }
        for (var e : byPeer.entrySet()) e.getKey().transport.submit(e.getKey(), e.getValue(), completion);
        return batch;
    }

    /** Drops finished batches from the head of the pending queue and times out the overdue ones. */
    private void expireOverdue() {
        long now = System.nanoTime();
        TransferBatch b;
        while ((b = pending.peek()) != null && (b.done().isDone() || now - b.deadlineNanos >= 0)) {
            pending.poll();
            if (!b.done().isDone())
                b.expire("not finished within the transfer timeout of "
                        + config.timeout().toMillis() + " ms");
        }
    }

    /** Submits and waits; throws with the first problem unless every request completed. */
    public void transfer(List<TransferRequest> requests) throws IOException {
        TransferBatch b = submit(requests).done().join();
        if (!b.allCompleted()) throw new IOException("transfer failed: " + b.firstProblem());
    }

    /**
     * Sends a small message to a peer's notification handler over the control channel and returns its
     * status byte; used after a batch of writes completed ("the KV of request r is there").
     */
    public byte notify(String segmentName, byte[] payload, Duration timeout) throws IOException {
        return control.notify(segmentName, payload, timeout);
    }

    /** A transport's handshake with a peer (the rdma queue pairs'), over the control channel. */
    private byte[] handshake(String segmentName, byte[] request) {
        return control.handshake(segmentName, request, config.timeout());
    }

    /** Diagnostics for tests and metrics: connections the tcp transport opened, endpoints pooled now. */
    public long tcpConnects() {
        return transportCounter("tcp", "connects");
    }

    public int tcpEndpoints() {
        return (int) transportCounter("tcp", "endpoints");
    }

    public long tcpEvictions() {
        return transportCounter("tcp", "evictions");
    }

    private final AtomicBoolean closed = new AtomicBoolean();

    /** Idempotent: a second call does nothing. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) return;
        try {
            watch.close();
        } catch (Exception ignored) {
            // best effort
        }
        metadata.remove(name);
        control.close();
        server.close();
        timer.shutdownNow();
        transports.values().forEach(Transport::close);
        SegmentFile.closeArena(arena);
        try {
            Files.deleteIfExists(shmFile);
        } catch (IOException ignored) {
            // best effort
        }
    }
}
