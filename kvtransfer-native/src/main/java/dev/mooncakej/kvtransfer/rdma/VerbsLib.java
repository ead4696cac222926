package dev.mooncakej.kvtransfer.rdma;

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
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;

/**
 * The exported libibverbs functions the rdma transport needs, bound through FFM from one library
 * (the system's {@code libibverbs.so.1}, or a fake provider in tests). Each failing call becomes an
 * {@link IllegalStateException} naming the verb and errno. The inline verbs (post_send, poll_cq) go
 * through {@link VerbsOps}.
 */
public final class VerbsLib {
    public static final int ACCESS_LOCAL_WRITE = 1, ACCESS_REMOTE_WRITE = 2, ACCESS_REMOTE_READ = 4;
    public static final int QPT_RC = 2;
    public static final int QPS_INIT = 1, QPS_RTR = 2, QPS_RTS = 3;
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
            queryGid;

    public VerbsLib(String library) {
        this.library = library;
        SymbolLookup lib = library.contains("/")
                ? SymbolLookup.libraryLookup(java.nio.file.Path.of(library), arena)
                : SymbolLookup.libraryLookup(library, arena);
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
    }

    private static MethodHandle bind(SymbolLookup lib, String name, FunctionDescriptor fd, Linker.Option... opts) {
        MemorySegment sym =
                lib.find(name).orElseThrow(() -> new IllegalStateException("the verbs library lacks " + name));
        return LINKER.downcallHandle(sym, fd, opts);
    }

    /** An opened device: context, protection domain, one completion queue, port 1's LID and GID. */
    public record Device(
            String name,
            MemorySegment context,
            MemorySegment pd,
            MemorySegment cq,
            int lid,
            byte[] gid,
            int activeMtu) {}

    /** Opens every device (empty when there is none; the reason is then in {@link Verbs#probe()}). */
    public List<Device> openAll(int cqEntries, int gidIndex) {
        List<Device> out = new ArrayList<>();
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment state = tmp.allocate(CALL_STATE), num = tmp.allocate(JAVA_INT);
            MemorySegment list = (MemorySegment) getDeviceList.invokeExact(state, num);
            if (list.equals(MemorySegment.NULL)) return out;
            try {
                int n = num.get(JAVA_INT, 0);
                MemorySegment arr = list.reinterpret(8L * n);
                for (int i = 0; i < n; i++) out.add(open(arr.getAtIndex(ADDRESS, i), cqEntries, gidIndex, tmp));
            } finally {
                freeDeviceList.invokeExact(list);
            }
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("verbs call failed: " + t, t);
        }
        return out;
    }

    private Device open(MemorySegment dev, int cqEntries, int gidIndex, Arena tmp) throws Throwable {
        String name = ((MemorySegment) getDeviceName.invokeExact(dev))
                .reinterpret(256)
                .getString(0);
        MemorySegment state = tmp.allocate(CALL_STATE);
        MemorySegment ctx =
                check((MemorySegment) openDevice.invokeExact(state, dev), "ibv_open_device(" + name + ")", state);
        MemorySegment pd = check((MemorySegment) allocPd.invokeExact(state, ctx), "ibv_alloc_pd(" + name + ")", state);
        MemorySegment cq = check(
                (MemorySegment) createCq.invokeExact(state, ctx, cqEntries, MemorySegment.NULL, MemorySegment.NULL, 0),
                "ibv_create_cq(" + name + ")",
                state);
        MemorySegment port = tmp.allocate(VerbsLayouts.IBV_PORT_ATTR);
        int rc = (int) queryPort.invokeExact(ctx, (byte) 1, port);
        if (rc != 0) throw new IllegalStateException("ibv_query_port(" + name + ", 1) failed: " + rc);
        MemorySegment gid = tmp.allocate(16, 8);
        rc = (int) queryGid.invokeExact(ctx, (byte) 1, gidIndex, gid);
        if (rc != 0) throw new IllegalStateException("ibv_query_gid(" + name + ", 1, " + gidIndex + ") failed: " + rc);
        int lid = Short.toUnsignedInt(port.get(
                java.lang.foreign.ValueLayout.JAVA_SHORT,
                VerbsLayouts.IBV_PORT_ATTR.byteOffset(MemoryLayout.PathElement.groupElement("lid"))));
        int mtu = port.get(
                JAVA_INT, VerbsLayouts.IBV_PORT_ATTR.byteOffset(MemoryLayout.PathElement.groupElement("active_mtu")));
        return new Device(name, ctx, pd, cq, lid, gid.toArray(JAVA_BYTE), mtu);
    }

    /** A memory region over {@code memory} with local write, remote read and remote write; returns the ibv_mr. */
    public MemorySegment registerMemory(Device d, MemorySegment memory) {
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

    public static int lkey(MemorySegment mr) {
        return mr.get(JAVA_INT, VerbsLayouts.IBV_MR.byteOffset(MemoryLayout.PathElement.groupElement("lkey")));
    }

    public static int rkey(MemorySegment mr) {
        return mr.get(JAVA_INT, VerbsLayouts.IBV_MR.byteOffset(MemoryLayout.PathElement.groupElement("rkey")));
    }

    /** An RC queue pair on the device's PD and CQ, in RESET. */
    public MemorySegment createRcQp(Device d, int maxSendWr) {
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

    /**
     * RESET -> INIT -> RTR -> RTS against the peer's queue pair (its number, LID and GID), the
     * standard RC connection sequence; a GID that is not all zero makes the address global (RoCE).
     */
    public void connect(Device d, MemorySegment qp, int remoteQpn, int remoteLid, byte[] remoteGid, int gidIndex) {
        var l = VerbsLayouts.IBV_QP_ATTR;
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment a = tmp.allocate(l);
            a.set(JAVA_INT, off(l, "qp_state"), QPS_INIT);
            a.set(JAVA_BYTE, off(l, "port_num"), (byte) 1);
            a.set(JAVA_INT, off(l, "qp_access_flags"), ACCESS_LOCAL_WRITE | ACCESS_REMOTE_WRITE | ACCESS_REMOTE_READ);
            modify(qp, a, QP_STATE | QP_PKEY_INDEX | QP_PORT | QP_ACCESS_FLAGS, "INIT");

            a.fill((byte) 0);
            a.set(JAVA_INT, off(l, "qp_state"), QPS_RTR);
            a.set(JAVA_INT, off(l, "path_mtu"), d.activeMtu() > 0 ? d.activeMtu() : 5);
            a.set(JAVA_INT, off(l, "dest_qp_num"), remoteQpn);
            a.set(JAVA_INT, off(l, "rq_psn"), 0);
            a.set(JAVA_BYTE, off(l, "max_dest_rd_atomic"), (byte) 16);
            a.set(JAVA_BYTE, off(l, "min_rnr_timer"), (byte) 12);
            long ah = off(l, "ah_attr");
            var ahl = VerbsLayouts.IBV_AH_ATTR;
            a.set(java.lang.foreign.ValueLayout.JAVA_SHORT, ah + off(ahl, "dlid"), (short) remoteLid);
            a.set(JAVA_BYTE, ah + off(ahl, "port_num"), (byte) 1);
            boolean global = false;
            for (byte b : remoteGid) global |= b != 0;
            if (global) {
                a.set(JAVA_BYTE, ah + off(ahl, "is_global"), (byte) 1);
                long grh = ah + off(ahl, "grh");
                MemorySegment.copy(MemorySegment.ofArray(remoteGid), 0, a, grh, 16);
                a.set(JAVA_BYTE, grh + off(VerbsLayouts.IBV_GLOBAL_ROUTE, "sgid_index"), (byte) gidIndex);
                a.set(JAVA_BYTE, grh + off(VerbsLayouts.IBV_GLOBAL_ROUTE, "hop_limit"), (byte) 64);
            }
            modify(
                    qp,
                    a,
                    QP_STATE | QP_AV | QP_PATH_MTU | QP_DEST_QPN | QP_RQ_PSN | QP_MAX_DEST_RD_ATOMIC | QP_MIN_RNR_TIMER,
                    "RTR");

            a.fill((byte) 0);
            a.set(JAVA_INT, off(l, "qp_state"), QPS_RTS);
            a.set(JAVA_BYTE, off(l, "timeout"), (byte) 14);
            a.set(JAVA_BYTE, off(l, "retry_cnt"), (byte) 7);
            a.set(JAVA_BYTE, off(l, "rnr_retry"), (byte) 7);
            a.set(JAVA_INT, off(l, "sq_psn"), 0);
            a.set(JAVA_BYTE, off(l, "max_rd_atomic"), (byte) 16);
            modify(qp, a, QP_STATE | QP_TIMEOUT | QP_RETRY_CNT | QP_RNR_RETRY | QP_SQ_PSN | QP_MAX_QP_RD_ATOMIC, "RTS");
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

    public void close(Device d, List<MemorySegment> mrs) {
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
