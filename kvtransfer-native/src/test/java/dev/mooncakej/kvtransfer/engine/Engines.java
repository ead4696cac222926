package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32C;

/** Helpers shared by the transfer tests. */
final class Engines {
    static final String SECRET = "test-cluster-secret-0123456789";

    private Engines() {}

    static TransferConfig config(String transport, Path shm) {
        return TransferConfig.defaults(SECRET, shm)
                .withTransports(List.of(transport))
                .withTimeout(Duration.ofSeconds(20));
    }

    static void fillRandom(MemorySegment m, long seed) {
        Random rnd = new Random(seed);
        long i = 0;
        for (; i + 8 <= m.byteSize(); i += 8) m.set(ValueLayout.JAVA_LONG_UNALIGNED, i, rnd.nextLong());
        for (; i < m.byteSize(); i++) m.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt());
    }

    static long crc(MemorySegment m) {
        CRC32C c = new CRC32C();
        c.update(m.asByteBuffer());
        return c.getValue();
    }

    /** A child JVM running a main class of the test classpath, with the project's JVM flags. */
    static ProcessBuilder childJvm(Class<?> main, String... args) {
        List<String> cmd = new ArrayList<>(List.of(
                ProcessHandle.current().info().command().orElse("java"),
                "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow",
                "-Xmx256m",
                "-cp",
                System.getProperty("java.class.path"),
                main.getName()));
        cmd.addAll(List.of(args));
        return new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
    }

    static long crc(byte[] b) {
        CRC32C c = new CRC32C();
        c.update(b);
        return c.getValue();
    }
}
