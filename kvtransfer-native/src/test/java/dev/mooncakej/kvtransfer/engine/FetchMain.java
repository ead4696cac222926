package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The reading side of the network-namespace test, in its own process:
 * {@code FetchMain LISTEN_HOST BYTES} reads the peer descriptor (one JSON line) from stdin, READs
 * BYTES from the peer's segment over tcp in 1 MiB requests, checks every byte against the peer's
 * pattern, and prints {@code <bytes> <seconds>}.
 */
public final class FetchMain {
    public static void main(String[] args) throws Exception {
        String host = args[0];
        long bytes = Long.parseLong(args[1]);
        SegmentDescriptor peer =
                DescriptorJson.read(new BufferedReader(new InputStreamReader(System.in)).readLine(), "stdin");
        SegmentMetadata md = new SegmentMetadata.Embedded();
        md.publish(peer);
        TransferConfig cfg = TransferConfig.defaults(Engines.SECRET, Path.of(System.getProperty("java.io.tmpdir")))
                .withTransports(List.of("tcp"))
                .withListen(host, 0, host);
        try (TransferEngine e =
                new TransferEngine("fetch-" + ProcessHandle.current().pid(), md, bytes, cfg)) {
            MemorySegment local = e.allocate(bytes, "cpu:0");
            long chunk = 1 << 20, span = peer.buffers().get(0).length() / chunk * chunk;
            List<TransferRequest> reqs = new ArrayList<>();
            for (long o = 0; o < bytes; o += chunk)
                reqs.add(new TransferRequest(
                        TransferRequest.Opcode.READ,
                        e.offsetOf(local) + o,
                        peer.name(),
                        o % span,
                        Math.min(chunk, bytes - o)));
            long t0 = System.nanoTime();
            e.transfer(reqs);
            double s = (System.nanoTime() - t0) / 1e9;
            for (long o = 0; o < bytes; o++) {
                long remote = o % span;
                if (local.get(ValueLayout.JAVA_BYTE, o) != (byte) (remote * 31 % 251))
                    throw new IllegalStateException("byte " + o + " differs from the peer's pattern");
            }
            System.out.println(bytes + " " + s);
        }
    }
}
