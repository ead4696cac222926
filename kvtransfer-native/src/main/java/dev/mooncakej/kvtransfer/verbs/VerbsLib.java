package dev.mooncakej.kvtransfer.verbs;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.net.InetAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Logger;

/**
 * The exported libibverbs functions the rdma transport needs, bound through FFM from one library
 * (the system's {@code libibverbs.so.1}, or a fake provider in tests). Each failing call becomes an
 * {@link IllegalStateException} naming the verb and errno. The inline verbs (post_send, poll_cq) go
 * through {@link VerbsOps}.
 */
public final class VerbsLib {
    public static final int ACCESS_LOCAL_WRITE = 1, ACCESS_REMOTE_WRITE = 2, ACCESS_REMOTE_READ = 4;
    public static final int QPT_RC = 2;
    public static final int QPS_INIT = 1, QPS_RTR = 2, QPS_RTS = 3, QPS_ERR = 6;
    public static final int PORT_ACTIVE = 4;
    public static final int WC_SUCCESS = 0, WC_WR_FLUSH_ERR = 5;
    /** ibv_event_type values the transport acts on. */
    public static final int EVENT_CQ_ERR = 0,
            EVENT_QP_FATAL = 1,
            EVENT_QP_REQ_ERR = 2,
            EVENT_QP_ACCESS_ERR = 3,
            EVENT_DEVICE_FATAL = 8,
            EVENT_PORT_ACTIVE = 9,
            EVENT_PORT_ERR = 10;

    public static final int QP_STATE = 1,
            QP_ACCESS_FLAGS = 1 << 3,
            QP_PKEY_INDEX = 1 << 4,
            QP_PORT = 1 << 5,
            QP_AV = 1 << 7,
            QP_PATH_MTU = 1 << 8,
            QP_TIMEOUT = 1 << 9,
            QP_RETRY_CNT = 1 << 10,
            QP_RNR_RETRY = 1 << 11,
            QP_RQ_PSN = 1 << 12,
            QP_MAX_QP_RD_ATOMIC = 1 << 13,
            QP_MIN_RNR_TIMER = 1 << 15,
            QP_SQ_PSN = 1 << 16,
            QP_MAX_DEST_RD_ATOMIC = 1 << 17,
            QP_DEST_QPN = 1 << 20;
    public static final int WR_RDMA_WRITE = 0, WR_RDMA_READ = 4, SEND_SIGNALED = 2;

    private static final Logger LOG = Logger.getLogger(VerbsLib.class.getName());
    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private final Arena arena = Arena.ofShared();
    private final String library;
    private final MethodHandle getDeviceList,
            freeDeviceList,
            getDeviceName,
            openDevice,
            closeDevice,
            allocPd,
            deallocPd,
            regMr,
            deregMr,
            createCq,
            destroyCq,
            createQp,
            destroyQp,
            modifyQp,
            queryPort,
            queryGid,
            queryDevice,
            getAsyncEvent,
            ackAsyncEvent,
            poll;

    public VerbsLib(String library) {
        this.library = library;
        SymbolLookup lib;
        try {
            lib = library.contains("/")
                    ? SymbolLookup.libraryLookup(Path.of(library), arena)
                    : SymbolLookup.libraryLookup(library, arena);
        } catch (IllegalArgumentException e) {
            arena.close();
            // not a configuration error: a machine without rdma-core's libibverbs has no RDMA, and the
            // engine falls back to its other transports (an IllegalArgumentException would stop start-up)
            throw new IllegalStateException(library + " cannot be loaded (" + e.getMessage()
                    + "); install rdma-core and ibverbs-providers for RDMA");
        }
        Linker.Option errno = Linker.Option.captureCallState("errno");
        getDeviceList = bind(lib, "ibv_get_device_list", FunctionDescriptor.of(ADDRESS, ADDRESS), errno);
        freeDeviceList = bind(lib, "ibv_free_device_list", FunctionDescriptor.ofVoid(ADDRESS));
        getDeviceName = bind(lib, "ibv_get_device_name", FunctionDescriptor.of(ADDRESS, ADDRESS));
        openDevice = bind(lib, "ibv_open_device", FunctionDescriptor.of(ADDRESS, ADDRESS), errno);
        closeDevice = bind(lib, "ibv_close_device", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        allocPd = bind(lib, "ibv_alloc_pd", FunctionDescriptor.of(ADDRESS, ADDRESS), errno);
        deallocPd = bind(lib, "ibv_dealloc_pd", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        regMr = bind(lib, "ibv_reg_mr", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), errno);
        deregMr = bind(lib, "ibv_dereg_mr", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        createCq = bind(
                lib,
                "ibv_create_cq",
                FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT),
                errno);
        destroyCq = bind(lib, "ibv_destroy_cq", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        createQp = bind(lib, "ibv_create_qp", FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS), errno);
        destroyQp = bind(lib, "ibv_destroy_qp", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        modifyQp = bind(lib, "ibv_modify_qp", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        queryPort = bind(lib, "ibv_query_port", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_BYTE, ADDRESS));
        queryGid = bind(lib, "ibv_query_gid", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_BYTE, JAVA_INT, ADDRESS));
        queryDevice = bind(lib, "ibv_query_device", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        getAsyncEvent = bind(lib, "ibv_get_async_event", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        ackAsyncEvent = bind(lib, "ibv_ack_async_event", FunctionDescriptor.ofVoid(ADDRESS));
        poll = LINKER.downcallHandle(
                LINKER.defaultLookup().find("poll").orElseThrow(),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    }

    private static MethodHandle bind(SymbolLookup lib, String name, FunctionDescriptor fd, Linker.Option... opts) {
        MemorySegment sym =
                lib.find(name).orElseThrow(() -> new IllegalStateException("the verbs library lacks " + name));
        return LINKER.downcallHandle(sym, fd, opts);
    }

    /**
     * Opens the devices the settings name (every device when they name none). A device whose port is
     * not active, or whose addressing cannot work (no LID, no usable GID), is left out with its reason
     * in {@code skipped}; a configured device that does not exist is an error.
     */
    public List<VerbsDevice> openAll(RdmaSettings s, List<InetAddress> preferred, List<String> skipped) {
        List<VerbsDevice> out = new ArrayList<>();
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment state = tmp.allocate(CALL_STATE), num = tmp.allocate(JAVA_INT);
            MemorySegment list = (MemorySegment) getDeviceList.invokeExact(state, num);
            if (list.equals(MemorySegment.NULL)) return out;
            List<String> seen = new ArrayList<>();
            try {
                int n = num.get(JAVA_INT, 0);
                MemorySegment arr = list.reinterpret(8L * n);
                for (int i = 0; i < n; i++) {
                    MemorySegment dev = arr.getAtIndex(ADDRESS, i);
                    String name = ((MemorySegment) getDeviceName.invokeExact(dev))
                            .reinterpret(256)
                            .getString(0);
                    seen.add(name);
                    if (!s.devices().isEmpty() && !s.devices().contains(name)) continue;
                    VerbsDevice d = open(dev, name, s, preferred, skipped, tmp);
                    if (d != null) out.add(d);
                }
            } finally {
                freeDeviceList.invokeExact(list);
            }
            for (String want : s.devices())
                if (!seen.contains(want)) {
                    out.forEach(d -> close(d, List.of()));
                    throw new IllegalArgumentException(
                            "rdma devices: '" + want + "' is not an RDMA device here; the devices are " + seen);
                }
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("verbs call failed: " + t, t);
        }
        return out;
    }

    private VerbsDevice open(
            MemorySegment dev,
            String name,
            RdmaSettings s,
            List<InetAddress> preferred,
            List<String> skipped,
            Arena tmp)
            throws Throwable {
        MemorySegment state = tmp.allocate(CALL_STATE);
        MemorySegment ctx =
                check((MemorySegment) openDevice.invokeExact(state, dev), "ibv_open_device(" + name + ")", state);
        MemorySegment pd = MemorySegment.NULL;
        try {
            RdmaAddressing.Caps caps = queryCaps(ctx, name);
            MemorySegment port = tmp.allocate(VerbsLayouts.IBV_PORT_ATTR);
            int rc = (int) queryPort.invokeExact(ctx, (byte) s.port(), port);
            if (rc != 0)
                throw new IllegalStateException("ibv_query_port(" + name + ", " + s.port() + ") failed: " + rc
                        + " (rdma port: does the card have that port?)");
            var pl = VerbsLayouts.IBV_PORT_ATTR;
            int portState = port.get(JAVA_INT, off(pl, "state"));
            int mtu = port.get(JAVA_INT, off(pl, "active_mtu"));
            int lid = Short.toUnsignedInt(port.get(ValueLayout.JAVA_SHORT, off(pl, "lid")));
            var ll = RdmaAddressing.LinkLayer.of(port.get(JAVA_BYTE, off(pl, "link_layer")));
            if (portState != PORT_ACTIVE) {
                skipped.add(name + " port " + s.port() + ": not active (state " + portState + ")");
                int ignored = (int) closeDevice.invokeExact(ctx);
                return null;
            }
            RdmaAddressing.Port view = RdmaAddressing.readPort(s.sysfsRoot(), name, s.port(), mtu);
            view = new RdmaAddressing.Port(
                    name,
                    s.port(),
                    ll,
                    view.state(),
                    lid,
                    mtu,
                    view.gids().isEmpty() ? queriedGids(ctx, s, ll) : view.gids());
            RdmaAddressing.Choice choice;
            try {
                choice = RdmaAddressing.choose(view, s.gidIndex(), preferred);
            } catch (IllegalStateException e) {
                skipped.add(e.getMessage());
                int ignored = (int) closeDevice.invokeExact(ctx);
                return null;
            }
            RdmaAddressing.QueuePlan plan = RdmaAddressing.QueuePlan.of(caps, s);
            pd = check((MemorySegment) allocPd.invokeExact(state, ctx), "ibv_alloc_pd(" + name + ")", state);
            MemorySegment cq = check(
                    (MemorySegment) createCq.invokeExact(
                            state, ctx, plan.cqEntries(), MemorySegment.NULL, MemorySegment.NULL, 0),
                    "ibv_create_cq(" + name + ", " + plan.cqEntries() + ")",
                    state);
            int asyncFd = ctx.reinterpret(VerbsLayouts.IBV_CONTEXT.byteSize())
                    .get(JAVA_INT, off(VerbsLayouts.IBV_CONTEXT, "async_fd"));
            return new VerbsDevice(
                    name,
                    ctx,
                    pd,
                    cq,
                    s.port(),
                    ll,
                    lid,
                    choice.gid(),
                    choice.index(),
                    mtu,
                    caps,
                    plan,
                    asyncFd,
                    choice.why());
        } catch (Throwable t) {
            if (!pd.equals(MemorySegment.NULL)) {
                int ignored = (int) deallocPd.invokeExact(pd);
            }
            int ignored = (int) closeDevice.invokeExact(ctx);
            throw t;
        }
    }

    /** Without sysfs (a container that hides it), the GIDs the device reports, of unknown type. */
    private List<RdmaAddressing.Gid> queriedGids(MemorySegment ctx, RdmaSettings s, RdmaAddressing.LinkLayer ll)
            throws Throwable {
        List<RdmaAddressing.Gid> out = new ArrayList<>();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment gid = a.allocate(16, 8);
            int index = Math.max(0, s.gidIndex());
            int rc = (int) queryGid.invokeExact(ctx, (byte) s.port(), index, gid);
            if (rc == 0)
                out.add(new RdmaAddressing.Gid(
                        index,
                        gid.toArray(JAVA_BYTE),
                        ll == RdmaAddressing.LinkLayer.INFINIBAND ? "IB/RoCE v1" : "unknown (no sysfs)",
                        ""));
        }
        return out;
    }

    private RdmaAddressing.Caps queryCaps(MemorySegment ctx, String name) throws Throwable {
        try (Arena a = Arena.ofConfined()) {
            var l = VerbsLayouts.IBV_DEVICE_ATTR;
            MemorySegment attr = a.allocate(l);
            int rc = (int) queryDevice.invokeExact(ctx, attr);
            if (rc != 0) throw new IllegalStateException("ibv_query_device(" + name + ") failed: " + rc);
            return new RdmaAddressing.Caps(
                    attr.get(JAVA_INT, off(l, "max_qp_wr")),
                    attr.get(JAVA_INT, off(l, "max_sge")),
                    attr.get(JAVA_INT, off(l, "max_cqe")),
                    attr.get(JAVA_INT, off(l, "max_qp_rd_atom")),
                    attr.get(JAVA_INT, off(l, "max_qp_init_rd_atom")));
        }
    }

    /** What a device's async event queue reported. {@code element} is the CQ or QP address, or the port number. */
    public record AsyncEvent(int type, long element) {}

    /**
     * Waits up to {@code timeoutMillis} for an async event of the device (poll(2) on its async fd, so
     * closing never hangs in a blocking read), returns it acknowledged, or null.
     */
    public AsyncEvent nextAsyncEvent(VerbsDevice d, int timeoutMillis) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pfd = a.allocate(8, 4);
            pfd.set(JAVA_INT, 0, d.asyncFd());
            pfd.set(ValueLayout.JAVA_SHORT, 4, (short) 1); // POLLIN
            int n = (int) poll.invokeExact(pfd, 1L, timeoutMillis);
            if (n <= 0) return null;
            MemorySegment ev = a.allocate(VerbsLayouts.IBV_ASYNC_EVENT);
            int rc = (int) getAsyncEvent.invokeExact(d.context(), ev);
            if (rc != 0) return null;
            int type = ev.get(JAVA_INT, off(VerbsLayouts.IBV_ASYNC_EVENT, "event_type"));
            long element =
                    type == EVENT_PORT_ACTIVE || type == EVENT_PORT_ERR ? ev.get(JAVA_INT, 0) : ev.get(JAVA_LONG, 0);
            ackAsyncEvent.invokeExact(ev);
            return new AsyncEvent(type, element);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("reading async events of " + d.name() + " failed: " + t, t);
        }
    }

    /** A memory region over {@code memory} with local write, remote read and remote write; returns the ibv_mr. */
    public MemorySegment registerMemory(VerbsDevice d, MemorySegment memory) {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment state = tmp.allocate(CALL_STATE);
            MemorySegment mr = (MemorySegment) regMr.invokeExact(
                    state,
                    d.pd(),
                    memory,
                    memory.byteSize(),
                    ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE | ACCESS_REMOTE_READ);
            return check(mr, "ibv_reg_mr(" + d.name() + ", " + memory.byteSize() + " bytes)", state)
                    .reinterpret(VerbsLayouts.IBV_MR.byteSize());
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Deregisters a memory region: the rkey stops working for every peer at once. */
    public void deregister(MemorySegment mr) {
        try {
            int rc = (int) deregMr.invokeExact(mr);
            if (rc != 0) LOG.warning("ibv_dereg_mr failed: " + rc);
        } catch (Throwable t) {
            LOG.warning("ibv_dereg_mr failed: " + t);
        }
    }

    public static int lkey(MemorySegment mr) {
        return mr.get(JAVA_INT, VerbsLayouts.IBV_MR.byteOffset(MemoryLayout.PathElement.groupElement("lkey")));
    }

    public static int rkey(MemorySegment mr) {
        return mr.get(JAVA_INT, VerbsLayouts.IBV_MR.byteOffset(MemoryLayout.PathElement.groupElement("rkey")));
    }

    /** An RC queue pair on the device's PD and CQ, in RESET. */
    public MemorySegment createRcQp(VerbsDevice d, int maxSendWr) {
        try (Arena tmp = Arena.ofConfined()) {
            var l = VerbsLayouts.IBV_QP_INIT_ATTR;
            MemorySegment attr = tmp.allocate(l);
            attr.set(ADDRESS, l.byteOffset(MemoryLayout.PathElement.groupElement("send_cq")), d.cq());
            attr.set(ADDRESS, l.byteOffset(MemoryLayout.PathElement.groupElement("recv_cq")), d.cq());
            long cap = l.byteOffset(MemoryLayout.PathElement.groupElement("cap"));
            attr.set(JAVA_INT, cap, maxSendWr); // max_send_wr
            attr.set(JAVA_INT, cap + 4, 1); // max_recv_wr
            attr.set(JAVA_INT, cap + 8, 1); // max_send_sge
            attr.set(JAVA_INT, cap + 12, 1); // max_recv_sge
            attr.set(JAVA_INT, l.byteOffset(MemoryLayout.PathElement.groupElement("qp_type")), QPT_RC);
            MemorySegment state = tmp.allocate(CALL_STATE);
            MemorySegment qp = (MemorySegment) createQp.invokeExact(state, d.pd(), attr);
            return check(qp, "ibv_create_qp(" + d.name() + ")", state).reinterpret(VerbsLayouts.IBV_QP.byteSize());
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    public static int qpNum(MemorySegment qp) {
        return qp.get(JAVA_INT, VerbsLayouts.IBV_QP.byteOffset(MemoryLayout.PathElement.groupElement("qp_num")));
    }

    /** The peer's side of a connection, from the handshake. */
    public record Remote(int qpn, int lid, byte[] gid, int activeMtu, int rdAtomic) {}

    /**
     * RESET -> INIT -> RTR -> RTS against the peer's queue pair, the standard RC connection sequence.
     * The path MTU is the smaller of both ports' active MTU and the read depth the smaller of both
     * devices' limits. RoCE always routes by GID (global route header with the chosen source GID, hop
     * limit and traffic class); InfiniBand by LID, with a global header only towards another subnet.
     */
    public void connect(VerbsDevice d, MemorySegment qp, Remote r, RdmaSettings s) {
        var l = VerbsLayouts.IBV_QP_ATTR;
        int mtu = RdmaAddressing.negotiateMtu(d.activeMtu(), r.activeMtu());
        int rd = Math.max(1, Math.min(d.plan().rdAtomic(), r.rdAtomic()));
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment a = tmp.allocate(l);
            a.set(JAVA_INT, off(l, "qp_state"), QPS_INIT);
            a.set(JAVA_BYTE, off(l, "port_num"), (byte) d.port());
            a.set(JAVA_INT, off(l, "qp_access_flags"), ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE | ACCESS_REMOTE_READ);
            modify(qp, a, QP_STATE | QP_PKEY_INDEX | QP_PORT | QP_ACCESS_FLAGS, "INIT");

            a.fill((byte) 0);
            a.set(JAVA_INT, off(l, "qp_state"), QPS_RTR);
            a.set(JAVA_INT, off(l, "path_mtu"), mtu);
            a.set(JAVA_INT, off(l, "dest_qp_num"), r.qpn());
            a.set(JAVA_INT, off(l, "rq_psn"), 0);
            a.set(JAVA_BYTE, off(l, "max_dest_rd_atomic"), (byte) rd);
            a.set(JAVA_BYTE, off(l, "min_rnr_timer"), (byte) 12);
            long ah = off(l, "ah_attr");
            var ahl = VerbsLayouts.IBV_AH_ATTR;
            a.set(JAVA_BYTE, ah + off(ahl, "port_num"), (byte) d.port());
            a.set(JAVA_BYTE, ah + off(ahl, "sl"), (byte) s.serviceLevel());
            boolean global =
                    d.linkLayer() == RdmaAddressing.LinkLayer.ETHERNET || RdmaAddressing.otherSubnet(d.gid(), r.gid());
            if (d.linkLayer() == RdmaAddressing.LinkLayer.INFINIBAND)
                a.set(ValueLayout.JAVA_SHORT, ah + off(ahl, "dlid"), (short) r.lid());
            if (global) {
                a.set(JAVA_BYTE, ah + off(ahl, "is_global"), (byte) 1);
                long grh = ah + off(ahl, "grh");
                MemorySegment.copy(MemorySegment.ofArray(r.gid()), 0, a, grh, 16);
                a.set(JAVA_BYTE, grh + off(VerbsLayouts.IBV_GLOBAL_ROUTE, "sgid_index"), (byte) d.gidIndex());
                a.set(JAVA_BYTE, grh + off(VerbsLayouts.IBV_GLOBAL_ROUTE, "hop_limit"), (byte) s.hopLimit());
                a.set(JAVA_BYTE, grh + off(VerbsLayouts.IBV_GLOBAL_ROUTE, "traffic_class"), (byte) s.trafficClass());
            }
            modify(
                    qp,
                    a,
                    QP_STATE | QP_AV | QP_PATH_MTU | QP_DEST_QPN | QP_RQ_PSN | QP_MAX_DEST_RD_ATOMIC | QP_MIN_RNR_TIMER,
                    "RTR (path MTU " + RdmaAddressing.mtuBytes(mtu) + ")");

            a.fill((byte) 0);
            a.set(JAVA_INT, off(l, "qp_state"), QPS_RTS);
            a.set(JAVA_BYTE, off(l, "timeout"), (byte) s.ackTimeout());
            a.set(JAVA_BYTE, off(l, "retry_cnt"), (byte) s.retryCount());
            a.set(JAVA_BYTE, off(l, "rnr_retry"), (byte) s.rnrRetry());
            a.set(JAVA_INT, off(l, "sq_psn"), 0);
            a.set(JAVA_BYTE, off(l, "max_rd_atomic"), (byte) rd);
            modify(qp, a, QP_STATE | QP_TIMEOUT | QP_RETRY_CNT | QP_RNR_RETRY | QP_SQ_PSN | QP_MAX_QP_RD_ATOMIC, "RTS");
        }
    }

    /** Moves a queue pair to ERROR: every work request still queued on it completes with a flush error. */
    public void toError(MemorySegment qp) {
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment a = tmp.allocate(VerbsLayouts.IBV_QP_ATTR);
            a.set(JAVA_INT, off(VerbsLayouts.IBV_QP_ATTR, "qp_state"), QPS_ERR);
            modify(qp, a, QP_STATE, "ERR");
        }
    }

    private void modify(MemorySegment qp, MemorySegment attr, int mask, String to) {
        int rc;
        try {
            rc = (int) modifyQp.invokeExact(qp, attr, mask);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (rc != 0)
            throw new IllegalStateException("ibv_modify_qp to " + to + " failed: " + rc + " (qp " + qpNum(qp) + ")");
    }

    private static long off(StructLayout l, String field) {
        return l.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }

    public void destroyQp(MemorySegment qp) {
        try {
            int ignored = (int) destroyQp.invokeExact(qp);
        } catch (Throwable t) {
            // closing
        }
    }

    public void close(VerbsDevice d, List<MemorySegment> mrs) {
        try {
            for (MemorySegment mr : mrs) {
                int ignored = (int) deregMr.invokeExact(mr);
            }
            int a = (int) destroyCq.invokeExact(d.cq());
            int b = (int) deallocPd.invokeExact(d.pd());
            int c = (int) closeDevice.invokeExact(d.context());
        } catch (Throwable t) {
            // closing
        }
    }

    private static MemorySegment check(MemorySegment r, String what, MemorySegment state) {
        if (r.equals(MemorySegment.NULL))
            throw new IllegalStateException(what + " failed with errno " + (int) ERRNO.get(state, 0L));
        return r;
    }

    public String library() {
        return library;
    }
}
