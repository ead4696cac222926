package dev.mooncakej.kvtransfer.verbs;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

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
import java.util.Optional;

/**
 * Thin FFM bindings to libibverbs (one method handle per exported symbol). No device on a machine is
 * reported as a {@link Probe} with the reason, never as a crash, so transport negotiation can fall
 * back to tcp or shm.
 */
public final class Verbs {
    /** What device discovery found. */
    public record Probe(boolean available, int devices, String reason) {}

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CALL_STATE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CALL_STATE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    private Verbs() {}

    /** Looks for RDMA devices through {@code ibv_get_device_list}; never throws. */
    public static Probe probe() {
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup lib;
            try {
                lib = SymbolLookup.libraryLookup("libibverbs.so.1", arena);
            } catch (IllegalArgumentException e) {
                return new Probe(
                        false, 0, "libibverbs.so.1 is not installed (apt-get install rdma-core ibverbs-providers)");
            }
            Optional<MemorySegment> getList = lib.find("ibv_get_device_list");
            Optional<MemorySegment> freeList = lib.find("ibv_free_device_list");
            if (getList.isEmpty() || freeList.isEmpty())
                return new Probe(false, 0, "libibverbs.so.1 lacks ibv_get_device_list");
            MethodHandle get = LINKER.downcallHandle(
                    getList.get(), FunctionDescriptor.of(ADDRESS, ADDRESS), Linker.Option.captureCallState("errno"));
            MethodHandle free = LINKER.downcallHandle(freeList.get(), FunctionDescriptor.ofVoid(ADDRESS));
            MemorySegment state = arena.allocate(CALL_STATE);
            MemorySegment num = arena.allocate(JAVA_INT);
            MemorySegment list = (MemorySegment) get.invokeExact(state, num);
            if (list.equals(MemorySegment.NULL)) {
                int errno = (int) ERRNO.get(state, 0L);
                return new Probe(
                        false,
                        0,
                        "ibv_get_device_list failed with errno " + errno
                                + (errno == 38 ? " (ENOSYS: this kernel has no InfiniBand/RDMA support)" : ""));
            }
            int n = num.get(ValueLayout.JAVA_INT, 0);
            free.invokeExact(list);
            return n > 0 ? new Probe(true, n, n + " RDMA device(s)") : new Probe(false, 0, "no RDMA device is present");
        } catch (Throwable t) {
            return new Probe(false, 0, "probing libibverbs failed: " + t);
        }
    }
}
