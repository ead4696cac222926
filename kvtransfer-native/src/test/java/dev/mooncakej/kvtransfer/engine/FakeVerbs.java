package dev.mooncakej.kvtransfer.engine;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Builds the fake libibverbs (src/test/resources/fake-verbs, C, compiled here with gcc) that stands in
 * for an RDMA device, which this machine cannot have: two emulated devices in one process, queue pairs
 * with the real state machine, rkey/lkey checks, one-sided WRITE/READ done by memcpy. Tests that use it
 * say so; the real-device run of the contract suite is the plain {@code rdma} case.
 */
final class FakeVerbs {
    private static Path built;

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

    static TransferConfig config(java.nio.file.Path shm) throws Exception {
        return Engines.config("rdma", shm)
                .withTransports(java.util.List.of("rdma", "tcp"))
                .withVerbsLibrary(library().toString());
    }
}
