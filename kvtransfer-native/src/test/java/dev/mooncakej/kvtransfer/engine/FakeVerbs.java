package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.verbs.RdmaSettings;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Builds the fake libibverbs (src/test/resources/fake-verbs, C, compiled here with gcc) that stands in
 * for an RDMA device, which this machine cannot have (a mock; tests that use it say so). It behaves
 * like a real provider where the transport must cope: completions arrive later from its own thread,
 * a failed request puts its QP in error and flushes the rest, a full CQ overruns into an async event,
 * RTR refuses an MTU or address the ports cannot carry, and errors can be injected from a seed. Four
 * devices: fakeib0/fakeib1 (InfiniBand, MTU 4096/2048) and fakeroce0/fakeroce1 (RoCE, MTU 1024), with
 * a sysfs tree written here that matches their GID tables. The real-device run of the contract suite
 * is the plain {@code rdma} case.
 */
final class FakeVerbs {
    private static Path built;
    private static Path sysfs;

    private FakeVerbs() {}

    static synchronized Path library() throws Exception {
        if (built != null) return built;
        Path dir = Files.createTempDirectory("fake-verbs");
        Path src = dir.resolve("fake_libibverbs.c"), lib = dir.resolve("libfakeibverbs.so");
        try (InputStream in = FakeVerbs.class.getResourceAsStream("/fake-verbs/fake_libibverbs.c")) {
            Files.copy(in, src);
        }
        Process cc = new ProcessBuilder(
                        "gcc",
                        "-shared",
                        "-fPIC",
                        "-O1",
                        "-Wall",
                        "-Werror",
                        "-o",
                        lib.toString(),
                        src.toString(),
                        "-lpthread")
                .redirectErrorStream(true)
                .start();
        String out = new String(cc.getInputStream().readAllBytes());
        if (cc.waitFor() != 0)
            throw new IllegalStateException(
                    "gcc could not build the fake verbs provider (needs gcc and libibverbs-dev): " + out);
        built = lib;
        return lib;
    }

    /** The sysfs tree of the fake devices, as the kernel would list them. */
    static synchronized Path sysfs() throws Exception {
        if (sysfs != null) return sysfs;
        Path root = Files.createTempDirectory("fake-sysfs");
        String[] names = {"fakeib0", "fakeib1", "fakeroce0", "fakeroce1"};
        for (int d = 0; d < 4; d++) {
            Path port = root.resolve(names[d]).resolve("ports/1");
            Files.createDirectories(port.resolve("gids"));
            Files.createDirectories(port.resolve("gid_attrs/types"));
            Files.createDirectories(port.resolve("gid_attrs/ndevs"));
            boolean eth = d >= 2;
            Files.writeString(port.resolve("link_layer"), eth ? "Ethernet\n" : "InfiniBand\n");
            Files.writeString(port.resolve("state"), "4: ACTIVE\n");
            Files.writeString(port.resolve("lid"), eth ? "0x0\n" : "0x" + (1 + d) + "\n");
            String ll = String.format("fe80:0000:0000:0000:0000:0000:0000:%04x", 1 + d);
            String v4 = String.format("0000:0000:0000:0000:0000:ffff:0a09:%04x", 1 + d);
            String[] gids = eth ? new String[] {ll, ll, v4, v4} : new String[] {ll};
            String[] types =
                    eth ? new String[] {"IB/RoCE v1", "RoCE v2", "IB/RoCE v1", "RoCE v2"} : new String[] {"IB/RoCE v1"};
            for (int i = 0; i < gids.length; i++) {
                Files.writeString(port.resolve("gids/" + i), gids[i] + "\n");
                Files.writeString(port.resolve("gid_attrs/types/" + i), types[i] + "\n");
                Files.writeString(port.resolve("gid_attrs/ndevs/" + i), (eth ? "fakeeth" + (d - 2) : "") + "\n");
            }
            Files.writeString(port.resolve("gids/" + gids.length), "0000:0000:0000:0000:0000:0000:0000:0000\n");
        }
        sysfs = root;
        return root;
    }

    /** The two InfiniBand devices, rdma then tcp. */
    static TransferConfig config(Path shm) throws Exception {
        return config(shm, List.of("fakeib0", "fakeib1"));
    }

    static TransferConfig config(Path shm, List<String> devices) throws Exception {
        return Engines.config("rdma", shm)
                .withTransports(List.of("rdma", "tcp"))
                .withVerbsLibrary(library().toString())
                .withRdma(RdmaSettings.DEFAULTS.withDevices(devices).withSysfsRoot(sysfs()));
    }

    /** A counter of the fake (live_qps, live_mrs, live_cqs, live_contexts, flushed, overruns, injected, ...). */
    static long stat(String name) throws Throwable {
        try (Arena a = Arena.ofConfined()) {
            MethodHandle h =
                    handle("fake_verbs_stat", FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.ADDRESS));
            return (long) h.invokeExact(a.allocateFrom(name));
        }
    }

    static void fail(int next) throws Throwable {
        MethodHandle h = handle("fake_verbs_fail", FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
        h.invokeExact(next);
    }

    /** Fails work requests at {@code perMillion} from a generator seeded with {@code seed}; 0 stops it. */
    static void inject(long seed, int perMillion) throws Throwable {
        MethodHandle h =
                handle("fake_verbs_inject", FunctionDescriptor.ofVoid(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
        h.invokeExact(seed, perMillion);
    }

    static void port(int device, boolean up) throws Throwable {
        MethodHandle h =
                handle("fake_verbs_port", FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        h.invokeExact(device, up ? 1 : 0);
    }

    static void qpFatal(int qpn) throws Throwable {
        MethodHandle h = handle("fake_verbs_qp_fatal", FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
        h.invokeExact(qpn);
    }

    /** Holds the fake's wire: nothing completes until {@code pause(false)}. */
    static void pause(boolean on) throws Throwable {
        MethodHandle h = handle("fake_verbs_pause", FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
        h.invokeExact(on ? 1 : 0);
    }

    /** Puts every CQ of a device in error (poll returns -1, IBV_EVENT_CQ_ERR), as an overrun would. */
    static void cqError(int device) throws Throwable {
        MethodHandle h = handle("fake_verbs_cq_error", FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
        h.invokeExact(device);
    }

    static void qpFatalOnDevice(int device) throws Throwable {
        MethodHandle h = handle("fake_verbs_qp_fatal_dev", FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT));
        h.invokeExact(device);
    }

    static void caps(int maxQpWr, int maxCqe) throws Throwable {
        MethodHandle h =
                handle("fake_verbs_caps", FunctionDescriptor.ofVoid(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        h.invokeExact(maxQpWr, maxCqe);
    }

    private static final Map<String, MethodHandle> HANDLES = new ConcurrentHashMap<>();

    /** Made once per function, so a call in the middle of a transfer takes microseconds, not milliseconds. */
    private static MethodHandle handle(String fn, FunctionDescriptor fd) throws Exception {
        MethodHandle h = HANDLES.get(fn);
        if (h != null) return h;
        SymbolLookup lib = SymbolLookup.libraryLookup(library(), Arena.global());
        MemorySegment sym = lib.find(fn).orElseThrow();
        h = Linker.nativeLinker().downcallHandle(sym, fd);
        HANDLES.put(fn, h);
        return h;
    }
}
