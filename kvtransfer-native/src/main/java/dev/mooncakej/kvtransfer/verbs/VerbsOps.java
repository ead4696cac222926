package dev.mooncakej.kvtransfer.verbs;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The verbs that verbs.h declares {@code static inline} ({@code ibv_post_send}, {@code ibv_poll_cq}):
 * not exported by the library, so they are reached as the header does, through the provider's
 * function pointers in {@code context->ops}. One downcall handle per provider function address,
 * made once; non-blocking, so the calls use {@code critical(false)}.
 */
public final class VerbsOps {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final long OPS = VerbsLayouts.IBV_CONTEXT.byteOffset(MemoryLayout.PathElement.groupElement("ops"));
    private static final long POST_SEND =
            OPS + VerbsLayouts.IBV_CONTEXT_OPS.byteOffset(MemoryLayout.PathElement.groupElement("post_send"));
    private static final long POLL_CQ =
            OPS + VerbsLayouts.IBV_CONTEXT_OPS.byteOffset(MemoryLayout.PathElement.groupElement("poll_cq"));
    private static final long QP_CONTEXT =
            VerbsLayouts.IBV_QP.byteOffset(MemoryLayout.PathElement.groupElement("context"));
    private static final long CQ_CONTEXT = 0; // struct ibv_cq { struct ibv_context *context; ... }
    private static final FunctionDescriptor POST_SEND_FN = FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
    private static final FunctionDescriptor POLL_CQ_FN = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
    private static final ConcurrentHashMap<Long, MethodHandle> HANDLES = new ConcurrentHashMap<>();

    private VerbsOps() {}

    /** {@code ibv_post_send(qp, wr, bad_wr)}: 0 or an errno value. */
    public static int postSend(MemorySegment qp, MemorySegment wr, MemorySegment badWr) {
        MemorySegment ctx = qp.reinterpret(VerbsLayouts.IBV_QP.byteSize()).get(ADDRESS, QP_CONTEXT);
        MemorySegment fn = ctx.reinterpret(VerbsLayouts.IBV_CONTEXT.byteSize()).get(ADDRESS, POST_SEND);
        try {
            return (int) handle(fn, POST_SEND_FN).invokeExact(qp, wr, badWr);
        } catch (Throwable t) {
            throw new IllegalStateException("ibv_post_send failed to dispatch", t);
        }
    }

    /** {@code ibv_poll_cq(cq, n, wc)}: completions written to {@code wc} (n x ibv_wc), or a negative error. */
    public static int pollCq(MemorySegment cq, int n, MemorySegment wc) {
        MemorySegment ctx = cq.reinterpret(8).get(ADDRESS, CQ_CONTEXT);
        MemorySegment fn = ctx.reinterpret(VerbsLayouts.IBV_CONTEXT.byteSize()).get(ADDRESS, POLL_CQ);
        try {
            return (int) handle(fn, POLL_CQ_FN).invokeExact(cq, n, wc);
        } catch (Throwable t) {
            throw new IllegalStateException("ibv_poll_cq failed to dispatch", t);
        }
    }

    private static MethodHandle handle(MemorySegment fn, FunctionDescriptor fd) {
        if (fn.equals(MemorySegment.NULL))
            throw new IllegalStateException("the provider's ops table has no function for this verb");
        return HANDLES.computeIfAbsent(fn.address(), a -> LINKER.downcallHandle(fn, fd, Linker.Option.critical(false)));
    }
}
