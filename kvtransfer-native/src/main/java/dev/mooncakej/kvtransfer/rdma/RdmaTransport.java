package dev.mooncakej.kvtransfer.rdma;

import dev.mooncakej.kvtransfer.spi.Peer;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.SievePool;
import dev.mooncakej.kvtransfer.spi.Slice;
import dev.mooncakej.kvtransfer.spi.Topology;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.spi.Transport;
import dev.mooncakej.kvtransfer.verbs.RdmaAddressing;
import dev.mooncakej.kvtransfer.verbs.RdmaSettings;
import dev.mooncakej.kvtransfer.verbs.Verbs;
import dev.mooncakej.kvtransfer.verbs.VerbsDevice;
import dev.mooncakej.kvtransfer.verbs.VerbsLib;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
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
 *
 * <p>In parts: this class opens the devices, registers memory, routes slices to endpoints and takes
 * the passive side of handshakes; {@link RdmaEndpoint} is an endpoint's life, {@link QueuePair} its
 * prepared work requests, {@link RdmaCompletions} the poller and the async events, {@link RdmaDevice}
 * a device's credits and health, {@link RdmaHandshake} what the two sides exchange.
 */
final class RdmaTransport implements Transport {
    private static final Logger LOG = Logger.getLogger(RdmaTransport.class.getName());
    static final JsonMapper JSON = JsonMapper.builder().build();

    enum State {
        NEW,
        CONNECTING,
        READY,
        DRAINING,
        CLOSED
    }

    record Posted(Slice slice, RdmaEndpoint ep) {}

    /** A slice to fail; {@code cause}: this path failed it (counts towards a downgrade), else it was swept up. */
    record Failure(Slice slice, String reason, boolean cause) {
        Failure(Slice slice, String reason) {
            this(slice, reason, false);
        }
    }

    /** A registered buffer: one memory region per device. */
    record Region(long address, long length, MemorySegment[] mrs, int[] lkeys) {}

    final VerbsLib verbs;
    final RdmaSettings settings;
    final List<RdmaDevice> devs = new ArrayList<>();
    private final Topology topology;
    private final String self;
    final BiFunction<String, byte[], byte[]> rpc;
    final SievePool<String, RdmaEndpoint> pool;
    final Map<Long, Posted> posted = new ConcurrentHashMap<>();
    final Map<String, MemorySegment> passive = new ConcurrentHashMap<>();
    final ConcurrentSkipListMap<Long, Region> regions = new ConcurrentSkipListMap<>();
    final Set<RdmaEndpoint> retiring = ConcurrentHashMap.newKeySet();
    final AtomicLong nextWr = new AtomicLong(1);
    final AtomicLong forcedFailures = new AtomicLong();
    final ExecutorService connector;
    private final Thread poller;
    private final Thread events;
    volatile Completion completion;
    volatile boolean stopping;
    volatile boolean closed;

    private RdmaTransport(
            VerbsLib verbs,
            RdmaSettings settings,
            List<VerbsDevice> devices,
            String self,
            int maxEndpoints,
            BiFunction<String, byte[], byte[]> rpc) {
        this.verbs = verbs;
        this.settings = settings;
        this.self = self;
        this.rpc = rpc;
        Map<String, Integer> numa = new LinkedHashMap<>();
        for (int i = 0; i < devices.size(); i++) {
            devs.add(new RdmaDevice(devices.get(i), i));
            numa.put(devices.get(i).name(), numaNode(settings, devices.get(i).name()));
        }
        this.topology = Topology.of(numa, Topology.numaNodes());
        this.pool = new SievePool<>(maxEndpoints, RdmaEndpoint::retire);
        AtomicInteger n = new AtomicInteger();
        this.connector = Executors.newCachedThreadPool(r -> Thread.ofPlatform()
                .daemon()
                .name("transfer-rdma-connect-" + n.incrementAndGet())
                .unstarted(r));
        RdmaCompletions completions = new RdmaCompletions(this);
        this.poller = Thread.ofPlatform().daemon().name("transfer-rdma-poll").start(completions::pollLoop);
        this.events = Thread.ofPlatform().daemon().name("transfer-rdma-events").start(completions::eventLoop);
    }

    /**
     * Opens the configured devices of the verbs library; null (with the reason in {@code why}) when
     * the library is missing or no device can be used.
     */
    static RdmaTransport open(
            TransferConfig config, String self, BiFunction<String, byte[], byte[]> rpc, StringBuilder why) {
        List<String> skipped = new ArrayList<>();
        List<VerbsDevice> devices;
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
        for (VerbsDevice d : devices)
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

    @Override
    public List<SegmentDescriptor.Device> devices() {
        List<SegmentDescriptor.Device> out = new ArrayList<>();
        for (RdmaDevice d : devs)
            out.add(new SegmentDescriptor.Device(
                    d.d.name(), d.d.lid(), HexFormat.of().formatHex(d.d.gid())));
        return out;
    }

    @Override
    public Map<String, List<List<String>>> topology() {
        return topology.matrix();
    }

    /** Registers a buffer on every device; returns its rkeys in device order (they go into the descriptor). */
    @Override
    public List<Integer> register(MemorySegment buffer) {
        MemorySegment[] mrs = new MemorySegment[devs.size()];
        int[] lkeys = new int[devs.size()];
        List<Integer> rkeys = new ArrayList<>();
        try {
            for (RdmaDevice d : devs) {
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
    @Override
    public void deregister(MemorySegment buffer) {
        Region r = regions.remove(buffer.address());
        if (r != null) for (MemorySegment mr : r.mrs()) verbs.deregister(mr);
    }

    /**
     * {@code memory-regions}: registered now (one per buffer and device), what a peer's rkeys can reach;
     * {@code devices-down}: devices unusable now (port down, CQ or device error); {@code
     * forced-failures}: work requests failed explicitly because no completion came within drain-millis.
     */
    @Override
    public long counter(String counter) {
        return switch (counter) {
            case "memory-regions" -> (long) regions.size() * devs.size();
            case "devices-down" -> devs.stream().filter(d -> d.down != null).count();
            case "forced-failures" -> forcedFailures.get();
            default -> 0;
        };
    }

    @Override
    public boolean canReach(SegmentDescriptor local, SegmentDescriptor peer) {
        return !devs.isEmpty()
                && peer.transports().contains("rdma")
                && !peer.devices().isEmpty();
    }

    @Override
    public void submit(Peer peer, List<? extends Slice> slices, Completion completion) {
        this.completion = completion;
        SegmentDescriptor d = peer.descriptor;
        Topology remoteTopology = new Topology(d.topology());
        for (Slice s : slices) {
            if (stopping) {
                completion.failed(s, "rdma transport is closing", true);
                continue;
            }
            String localName = topology.select(s.location, s.attempt);
            RdmaDevice dev = dev(localName);
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
            RdmaEndpoint ep = pool.get(key, k -> new RdmaEndpoint(this, k, dev, d, remoteName));
            ep.start();
            ep.post(s, d.baseAddress() + s.remoteOffset, buf.rkeys().get(remote));
        }
    }

    private RdmaDevice dev(String name) {
        for (RdmaDevice d : devs) if (d.d.name().equals(name)) return d;
        return null;
    }

    private static int indexOfRemote(SegmentDescriptor d, String device) {
        for (int i = 0; i < d.devices().size(); i++)
            if (d.devices().get(i).name().equals(device)) return i;
        return -1;
    }

    RdmaHandshake ours(RdmaDevice dev, String target, int qpn) {
        VerbsDevice d = dev.d;
        return new RdmaHandshake(
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

    static VerbsLib.Remote remoteOf(RdmaDevice local, RdmaHandshake h) {
        if (!h.linkLayer().equals(local.d.linkLayer().name()))
            throw new IllegalStateException("link layers differ: " + local.d.name() + " is " + local.d.linkLayer()
                    + ", the peer's " + h.device() + " is " + h.linkLayer());
        return new VerbsLib.Remote(h.qpn(), h.lid(), HexFormat.of().parseHex(h.gid()), h.mtu(), h.rdAtomic());
    }

    /** The passive side of a handshake (on the control channel's thread): a connected QP on the requested device. */
    @Override
    public boolean acceptsHandshakes() {
        return true;
    }

    @Override
    public byte[] acceptHandshake(byte[] request) {
        RdmaHandshake h = JSON.readValue(request, RdmaHandshake.class).validated();
        if (stopping) throw new IllegalStateException("rdma transport is closing");
        RdmaDevice dev = dev(h.target());
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
        for (RdmaEndpoint ep : pool.values())
            if (ep.peer.name().equals(peer)) ep.breakEndpoint("peer '" + peer + "' changed");
        passive.entrySet().removeIf(e -> {
            if (!e.getKey().startsWith(peer + "@")) return false;
            verbs.destroyQp(e.getValue());
            return true;
        });
    }

    Region regionOf(MemorySegment local) {
        var e = regions.floorEntry(local.address());
        if (e == null) return null;
        Region r = e.getValue();
        return local.address() + local.byteSize() <= r.address() + r.length() ? r : null;
    }

    void fire(List<Failure> failures) {
        Completion c = completion;
        for (Failure f : failures) {
            if (f.cause()) c.failed(f.slice(), f.reason(), true);
            else c.swept(f.slice(), f.reason());
        }
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
        for (RdmaEndpoint ep : pool.values()) ep.retire();
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
        for (RdmaDevice d : devs)
            for (RdmaEndpoint ep : List.copyOf(d.endpoints))
                synchronized (ep) {
                    ep.failInflight("the transport closed", failures);
                    ep.destroyLocked();
                }
        if (completion != null) fire(failures);
        passive.values().forEach(verbs::destroyQp);
        passive.clear();
        for (Region r : regions.values()) for (MemorySegment mr : r.mrs()) verbs.deregister(mr);
        regions.clear();
        for (RdmaDevice d : devs) verbs.close(d.d, List.of());
    }
}
