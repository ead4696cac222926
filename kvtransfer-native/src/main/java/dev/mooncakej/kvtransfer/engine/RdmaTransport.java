package dev.mooncakej.kvtransfer.engine;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.mooncakej.kvtransfer.rdma.VerbsLayouts;
import dev.mooncakej.kvtransfer.rdma.VerbsLib;
import dev.mooncakej.kvtransfer.rdma.VerbsOps;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BiFunction;
import java.util.logging.Logger;
import tools.jackson.databind.json.JsonMapper;

/**
 * The rdma transport: libibverbs through FFM. Every device is opened with a protection domain and a
 * completion queue; the whole segment is registered on each (its rkeys go into the descriptor). An
 * endpoint is (local device, peer segment, peer device) holding one RC queue pair, made lazily on
 * first use: this side creates its QP, sends {lid, gid, qpn} over the tcp control channel, the peer
 * creates and connects its own (INIT -> RTR -> RTS) and answers with its numbers, and this side
 * connects. Slices become one-sided RDMA WRITE / READ work requests, posted in chains from work
 * requests prepared once per endpoint; one poller thread reaps completions (backing off when idle
 * instead of spinning a core). A failed completion breaks its endpoint; the engine retries the slice
 * on another device (the topology matrix walks preferred then secondary devices).
 */
final class RdmaTransport implements Transport {
    private static final Logger LOG = Logger.getLogger(RdmaTransport.class.getName());
    private static final JsonMapper JSON = JsonMapper.builder().build();
    static final int MAX_WR = 256;
    static final int CHAIN = 16;
    static final int GID_INDEX = 0;

    /** What the two sides exchange to connect a queue pair. */
    record Handshake(String segment, String device, String target, int lid, String gid, int qpn) {}

    private final VerbsLib verbs;
    private final List<VerbsLib.Device> devices;
    private final Topology topology;
    private final String self;
    private final BiFunction<String, byte[], byte[]> rpc;
    private final List<MemorySegment> mrs = new ArrayList<>();
    private final int[] lkeys;
    private final SievePool<String, Endpoint> pool;
    private final Map<Long, Slice> posted = new ConcurrentHashMap<>();
    private final Map<Long, Endpoint> postedOn = new ConcurrentHashMap<>();
    private final Map<String, MemorySegment> passive = new ConcurrentHashMap<>();
    private final AtomicLong nextWr = new AtomicLong(1);
    private final Thread poller;
    private volatile Completion completion;
    private volatile boolean closed;

    private RdmaTransport(
            VerbsLib verbs,
            List<VerbsLib.Device> devices,
            MemorySegment segment,
            String self,
            int maxEndpoints,
            BiFunction<String, byte[], byte[]> rpc) {
        this.verbs = verbs;
        this.devices = devices;
        this.self = self;
        this.rpc = rpc;
        Map<String, Integer> numa = new LinkedHashMap<>();
        for (VerbsLib.Device d : devices) numa.put(d.name(), numaNode(d.name()));
        this.topology = Topology.of(numa, Topology.numaNodes());
        this.lkeys = new int[devices.size()];
        for (int i = 0; i < devices.size(); i++) {
            MemorySegment mr = verbs.registerMemory(devices.get(i), segment);
            mrs.add(mr);
            lkeys[i] = VerbsLib.lkey(mr);
        }
        this.pool = new SievePool<>(maxEndpoints, Endpoint::close);
        this.poller = Thread.ofPlatform().daemon().name("transfer-rdma-poll").start(this::pollLoop);
    }

    /**
     * Opens every device of the verbs library and registers the segment on each; null (with the
     * reason logged by the caller) when the library is missing or has no device.
     */
    static RdmaTransport open(
            TransferConfig config,
            MemorySegment segment,
            String self,
            BiFunction<String, byte[], byte[]> rpc,
            StringBuilder why) {
        try {
            VerbsLib verbs = new VerbsLib(config.verbsLibrary());
            List<VerbsLib.Device> devices = verbs.openAll(4096, GID_INDEX);
            if (devices.isEmpty()) {
                why.append(dev.mooncakej.kvtransfer.rdma.Verbs.probe().reason());
                return null;
            }
            RdmaTransport t = new RdmaTransport(verbs, devices, segment, self, config.maxEndpoints(), rpc);
            why.append(devices.size())
                    .append(" device(s): ")
                    .append(devices.stream().map(VerbsLib.Device::name).toList());
            return t;
        } catch (RuntimeException | LinkageError e) {
            why.append("cannot use ").append(config.verbsLibrary()).append(": ").append(e.getMessage());
            return null;
        }
    }

    @Override
    public String name() {
        return "rdma";
    }

    List<SegmentDescriptor.Device> descriptorDevices() {
        List<SegmentDescriptor.Device> out = new ArrayList<>();
        for (VerbsLib.Device d : devices)
            out.add(new SegmentDescriptor.Device(
                    d.name(), d.lid(), HexFormat.of().formatHex(d.gid())));
        return out;
    }

    List<Integer> rkeys() {
        List<Integer> out = new ArrayList<>();
        for (MemorySegment mr : mrs) out.add(VerbsLib.rkey(mr));
        return out;
    }

    Map<String, List<List<String>>> topologyMatrix() {
        return topology.matrix();
    }

    @Override
    public boolean canReach(SegmentDescriptor local, SegmentDescriptor peer) {
        return !devices.isEmpty()
                && peer.transports().contains("rdma")
                && !peer.devices().isEmpty();
    }

    @Override
    public void submit(Peer peer, List<Slice> slices, Completion completion) {
        this.completion = completion;
        SegmentDescriptor d = peer.descriptor;
        Topology remoteTopology = new Topology(d.topology());
        for (Slice s : slices) {
            String localName = topology.select(s.location, s.attempt);
            int local = indexOf(localName);
            SegmentDescriptor.Buffer buf = d.bufferOf(s.remoteOffset, s.length());
            String remoteName = buf == null ? null : remoteTopology.select(buf.location(), s.attempt);
            int remote = remoteName == null ? -1 : indexOfRemote(d, remoteName);
            if (local < 0 || remote < 0 || buf.rkeys().size() <= remote) {
                completion.failed(
                        s,
                        "no rdma path to '" + d.name() + "' for [" + s.remoteOffset + ", +" + s.length() + ")",
                        true);
                continue;
            }
            String key = d.name() + "@" + localName + "/" + remoteName;
            Endpoint ep;
            try {
                ep = pool.get(key, k -> new Endpoint(k, local, d, remoteName));
            } catch (RuntimeException e) {
                completion.failed(
                        s, "rdma handshake with '" + d.name() + "' (" + key + ") failed: " + e.getMessage(), true);
                continue;
            }
            ep.post(s, d.baseAddress() + s.remoteOffset, buf.rkeys().get(remote));
        }
    }

    private int indexOf(String device) {
        for (int i = 0; i < devices.size(); i++) if (devices.get(i).name().equals(device)) return i;
        return -1;
    }

    private static int indexOfRemote(SegmentDescriptor d, String device) {
        for (int i = 0; i < d.devices().size(); i++)
            if (d.devices().get(i).name().equals(device)) return i;
        return -1;
    }

    /**
     * The passive side of a handshake: a QP on the requested device, connected to the caller's; returns our numbers.
     */
    byte[] accept(byte[] request) {
        Handshake h = JSON.readValue(request, Handshake.class);
        int i = indexOf(h.target());
        if (i < 0) throw new IllegalArgumentException("no rdma device '" + h.target() + "' here");
        VerbsLib.Device d = devices.get(i);
        MemorySegment qp = verbs.createRcQp(d, MAX_WR);
        verbs.connect(d, qp, h.qpn(), h.lid(), HexFormat.of().parseHex(h.gid()), GID_INDEX);
        MemorySegment old = passive.put(h.segment() + "@" + h.device() + "/" + h.target(), qp);
        if (old != null) verbs.destroyQp(old);
        return JSON.writeValueAsBytes(new Handshake(
                self, d.name(), h.device(), d.lid(), HexFormat.of().formatHex(d.gid()), VerbsLib.qpNum(qp)));
    }

    /** One RC queue pair to one device of one peer, with work requests prepared once and reused. */
    final class Endpoint {
        final String key;
        final int device;
        final MemorySegment qp;
        final int qpn;
        private final Arena arena = Arena.ofShared();
        private final MemorySegment wrs;
        private final MemorySegment sges;
        private final MemorySegment bad;
        private final ArrayDeque<Object[]> waiting = new ArrayDeque<>();
        private int outstanding;
        private volatile boolean broken;

        Endpoint(String key, int device, SegmentDescriptor peer, String remoteDevice) {
            this.key = key;
            this.device = device;
            VerbsLib.Device d = devices.get(device);
            this.qp = verbs.createRcQp(d, MAX_WR);
            this.qpn = VerbsLib.qpNum(qp);
            try {
                byte[] reply = rpc.apply(
                        peer.name(),
                        JSON.writeValueAsBytes(new Handshake(
                                self,
                                d.name(),
                                remoteDevice,
                                d.lid(),
                                HexFormat.of().formatHex(d.gid()),
                                qpn)));
                Handshake h = JSON.readValue(reply, Handshake.class);
                verbs.connect(d, qp, h.qpn(), h.lid(), HexFormat.of().parseHex(h.gid()), GID_INDEX);
            } catch (RuntimeException e) {
                verbs.destroyQp(qp);
                throw e;
            }
            var wl = VerbsLayouts.IBV_SEND_WR;
            this.wrs = arena.allocate(wl.byteSize() * CHAIN, 8);
            this.sges = arena.allocate(VerbsLayouts.IBV_SGE.byteSize() * CHAIN, 8);
            this.bad = arena.allocate(ADDRESS);
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

        /** Posts a slice now, or queues it while {@link #MAX_WR} are outstanding. */
        void post(Slice s, long remoteAddr, int rkey) {
            synchronized (this) {
                if (broken) {
                    completion.failed(s, "rdma endpoint " + key + " is broken", true);
                    return;
                }
                waiting.add(new Object[] {s, remoteAddr, rkey});
                drain();
            }
        }

        /** Fills the prepared work requests from the queue and posts them as one chain. Holds the lock. */
        private void drain() {
            while (!waiting.isEmpty() && outstanding < MAX_WR) {
                int n = 0;
                long wrSize = VerbsLayouts.IBV_SEND_WR.byteSize(), sgeSize = VerbsLayouts.IBV_SGE.byteSize();
                long[] ids = new long[CHAIN];
                while (n < CHAIN && !waiting.isEmpty() && outstanding + n < MAX_WR) {
                    Object[] w = waiting.poll();
                    Slice s = (Slice) w[0];
                    long id = nextWr.getAndIncrement();
                    ids[n] = id;
                    posted.put(id, s);
                    postedOn.put(id, this);
                    long wo = n * wrSize, so = n * sgeSize;
                    wrs.set(JAVA_LONG, wo + WR_ID, id);
                    wrs.set(JAVA_INT, wo + WR_OPCODE, s.write ? VerbsLib.WR_RDMA_WRITE : VerbsLib.WR_RDMA_READ);
                    wrs.set(JAVA_LONG, wo + WR_REMOTE_ADDR, (long) w[1]);
                    wrs.set(JAVA_INT, wo + WR_RKEY, (int) w[2]);
                    wrs.set(ADDRESS, wo + WR_NEXT, MemorySegment.NULL);
                    if (n > 0) wrs.set(ADDRESS, wo - wrSize + WR_NEXT, wrs.asSlice(wo, wrSize));
                    sges.set(JAVA_LONG, so + SGE_ADDR, s.local.address());
                    sges.set(JAVA_INT, so + SGE_LENGTH, (int) s.length());
                    sges.set(JAVA_INT, so + SGE_LKEY, lkeys[device]);
                    n++;
                }
                int rc = VerbsOps.postSend(qp, wrs, bad);
                if (rc != 0) {
                    // out of the pool first, so the retries of these slices get a fresh queue pair, not this one
                    breakEndpoint();
                    for (int i = 0; i < n; i++) {
                        Slice s = posted.remove(ids[i]);
                        postedOn.remove(ids[i]);
                        if (s != null) completion.failed(s, "ibv_post_send on " + key + " failed: " + rc, true);
                    }
                    return;
                }
                outstanding += n;
            }
        }

        synchronized void completed() {
            outstanding--;
            drain();
        }

        /** A failed completion or post: the QP is in error; leave the pool, fail what waits. */
        void breakEndpoint() {
            List<Slice> lost = new ArrayList<>();
            synchronized (this) {
                if (broken) return;
                broken = true;
                for (Object[] w : waiting) lost.add((Slice) w[0]);
                waiting.clear();
            }
            pool.remove(key, this);
            for (Slice s : lost) completion.failed(s, "rdma endpoint " + key + " broke", true);
        }

        void close() {
            synchronized (this) {
                broken = true;
            }
            verbs.destroyQp(qp);
        }
    }

    private void pollLoop() {
        MemorySegment wc = Arena.global().allocate(VerbsLayouts.IBV_WC.byteSize() * 16, 8);
        long wcSize = VerbsLayouts.IBV_WC.byteSize();
        int idle = 0;
        while (!closed) {
            int got = 0;
            for (VerbsLib.Device d : devices) {
                int n = VerbsOps.pollCq(d.cq(), 16, wc);
                for (int i = 0; i < n; i++) {
                    long id = wc.get(JAVA_LONG, i * wcSize + WC_ID);
                    int status = wc.get(JAVA_INT, i * wcSize + WC_STATUS);
                    Slice s = posted.remove(id);
                    Endpoint ep = postedOn.remove(id);
                    if (ep != null) ep.completed();
                    if (s == null) continue;
                    if (status == 0) completion.done(s);
                    else {
                        if (ep != null) ep.breakEndpoint();
                        completion.failed(
                                s,
                                "rdma work completion status " + status + " on " + (ep == null ? "?" : ep.key),
                                true);
                    }
                }
                got += Math.max(0, n);
            }
            if (got > 0) idle = 0;
            else if (++idle > 64)
                LockSupport.parkNanos(posted.isEmpty() ? 1_000_000 : 20_000); // back off instead of spinning a core
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

    private static long off(java.lang.foreign.StructLayout l, String f) {
        return l.byteOffset(MemoryLayout.PathElement.groupElement(f));
    }

    private static int numaNode(String device) {
        try {
            return Integer.parseInt(java.nio.file.Files.readString(
                            java.nio.file.Path.of("/sys/class/infiniband", device, "device/numa_node"))
                    .trim());
        } catch (Exception e) {
            return -1;
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            poller.join(1000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (Endpoint ep : pool.values()) ep.close();
        passive.values().forEach(verbs::destroyQp);
        for (int i = 0; i < devices.size(); i++) verbs.close(devices.get(i), List.of(mrs.get(i)));
    }
}
