package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A transfer peer in its own process, for tests that kill it or run it in another network namespace:
 * {@code PeerMain NAME SEGMENT_BYTES SHM_DIR LISTEN_HOST [ETCD_URL]} (with etcd: published under a 2 s lease).
 * Registers its whole segment (filled with a
 * pattern: byte i = i * 31 mod 251), prints its descriptor as one JSON line, then serves until stdin
 * closes.
 */
public final class PeerMain {
    public static void main(String[] args) throws Exception {
        long bytes = Long.parseLong(args[1]);
        TransferConfig cfg = TransferConfig.defaults(Engines.SECRET, Path.of(args[2]))
                .withTransports(List.of("tcp"))
                .withListen(args[3], 0, args[3]);
        SegmentMetadata md = args.length > 4
                ? new EtcdSegmentMetadata(List.of(args[4]), "mooncakej-test/", 2, Duration.ofSeconds(5))
                : new SegmentMetadata.Embedded();
        try (md;
                TransferEngine e = new TransferEngine(args[0], md, bytes, cfg)) {
            var buf = e.allocate(bytes, "cpu:0");
            for (long i = 0; i < bytes; i++) buf.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31 % 251));
            System.out.println(DescriptorJson.write(e.descriptor()));
            System.out.flush();
            while (System.in.read() >= 0) {
                // serve until the parent closes stdin or kills this process
            }
        }
    }
}
