package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.PeerAuth;
import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.tcp.Wire;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Faults on the tcp transport: a connection cut mid-batch by a proxy (its slices retried on another
 * connection, the data intact), a peer process killed mid-batch (the batch fails with a clear status
 * well within its timeout and every connection is released), a peer that stops answering (TIMEOUT at
 * the deadline), and a shm path that breaks (the peer is downgraded to tcp and the data still arrives).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TransferFaultTest {
    @TempDir
    Path shm;

    /**
     * Metadata that shows one segment's descriptor changed (its tcp port pointing at the proxy, or another shm file).
     */
    private record Redirect(SegmentMetadata inner, String segment, UnaryOperator<SegmentDescriptor> change)
            implements SegmentMetadata {
        Redirect(SegmentMetadata inner, String segment, int port) {
            this(
                    inner,
                    segment,
                    d -> new SegmentDescriptor(
                            d.name(),
                            d.hostId(),
                            d.rpcHost(),
                            port,
                            d.shmFile(),
                            d.baseAddress(),
                            d.length(),
                            d.transports(),
                            d.devices(),
                            d.topology(),
                            d.buffers()));
        }

        @Override
        public void publish(SegmentDescriptor d) {
            inner.publish(d);
        }

        @Override
        public void remove(String name) {
            inner.remove(name);
        }

        @Override
        public AutoCloseable watch(BiConsumer<String, SegmentDescriptor> l) {
            return inner.watch(l);
        }

        @Override
        public Optional<SegmentDescriptor> lookup(String name) {
            return inner.lookup(name).map(d -> !d.name().equals(segment) ? d : change.apply(d));
        }
    }

    @Test
    void aConnectionCutMidBatchHasItsSlicesRetriedOnAnotherAndTheDataArrivesIntact() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        long size = 32L << 20;
        TransferConfig cfg = Engines.config("tcp", shm).withConnections(2, 8);
        try (TransferEngine b = new TransferEngine("decode-0", md, size, cfg);
                CutProxy proxy = new CutProxy(b.port(), 5L << 20);
                TransferEngine a =
                        new TransferEngine("prefill-0", new Redirect(md, "decode-0", proxy.port()), size, cfg)) {
            MemorySegment abuf = a.allocate(size, "cpu:0");
            b.allocate(size, "cpu:0");
            Engines.fillRandom(abuf, 9);
            List<TransferRequest> reqs = new ArrayList<>();
            for (long o = 0; o < size; o += 256 * 1024)
                reqs.add(new TransferRequest(TransferRequest.Opcode.WRITE, o, "decode-0", o, 256 * 1024));
            TransferBatch r = a.submit(reqs).done().get(30, TimeUnit.SECONDS);
            assertThat(proxy.cuts.get())
                    .as("the proxy cut a connection mid-batch")
                    .isEqualTo(1);
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(Engines.crc(b.segment()))
                    .as("checksum after the retried slices")
                    .isEqualTo(Engines.crc(abuf));
            assertThat(proxy.connections())
                    .as("slices striped over two connections")
                    .isGreaterThanOrEqualTo(2);
        }
    }

    @Test
    void aPeerKilledMidBatchFailsTheBatchCleanlyWithinItsTimeout() throws Exception {
        long size = 64L << 20;
        Process peer = Engines.childJvm(PeerMain.class, "victim", String.valueOf(size), shm.toString(), "127.0.0.1")
                .start();
        try {
            String json = new BufferedReader(new InputStreamReader(peer.getInputStream())).readLine();
            SegmentMetadata md = new SegmentMetadata.Embedded();
            md.publish(DescriptorJson.read(json, "the peer process"));
            TransferConfig cfg = Engines.config("tcp", shm).withTimeout(Duration.ofSeconds(10));
            try (TransferEngine a = new TransferEngine("prefill-0", md, size, cfg)) {
                a.allocate(size, "cpu:0");
                List<TransferRequest> reqs = new ArrayList<>();
                for (int i = 0; i < 4096; i++)
                    reqs.add(new TransferRequest(
                            TransferRequest.Opcode.WRITE, 0, "victim", (i % 64) * (1L << 20), 1 << 20));
                long t0 = System.nanoTime();
                TransferBatch batch = a.submit(reqs);
                Thread.sleep(150);
                peer.destroyForcibly().waitFor();
                TransferBatch r = batch.done().get(15, TimeUnit.SECONDS);
                double seconds = (System.nanoTime() - t0) / 1e9;
                long completed = 0, failed = 0;
                String reason = null;
                for (int i = 0; i < r.size(); i++) {
                    assertThat(r.status(i)).isNotEqualTo(TransferBatch.Status.WAITING);
                    if (r.status(i) == TransferBatch.Status.COMPLETED) completed++;
                    if (r.status(i) == TransferBatch.Status.FAILED) {
                        failed++;
                        reason = r.reason(i);
                    }
                }
                System.out.printf(
                        "killed peer: %d completed, %d failed in %.2f s; e.g. %s%n",
                        completed, failed, seconds, reason);
                assertThat(failed).as("the kill landed mid-batch").isGreaterThan(0);
                assertThat(reason).contains("victim");
                assertThat(seconds).as("failed within the 10 s timeout").isLessThan(10);
                Thread.sleep(200);
                assertThat(a.tcpEndpoints())
                        .as("no connection left in the pool")
                        .isZero();
                assertThat(Thread.getAllStackTraces().keySet().stream()
                                .filter(t -> t.getName().startsWith("transfer-send-victim")
                                        || t.getName().startsWith("transfer-recv-victim")))
                        .as("no connection thread left")
                        .isEmpty();
            }
        } finally {
            peer.destroyForcibly();
        }
    }

    @Test
    void aPeerThatStopsAnsweringTimesOutAtTheDeadline() throws Exception {
        PeerAuth auth = new PeerAuth(Engines.SECRET);
        try (ServerSocketChannel stall = ServerSocketChannel.open()) {
            stall.bind(new InetSocketAddress("127.0.0.1", 0));
            Thread.ofPlatform().daemon().start(() -> {
                try {
                    while (true) {
                        SocketChannel ch = stall.accept();
                        auth.accept(ch, "mute");
                        ch.write(ByteBuffer.wrap(new byte[] {Wire.AUTH_OK}));
                        // then read nothing and answer nothing
                    }
                } catch (Exception ignored) {
                    // closed
                }
            });
            SegmentMetadata md = new SegmentMetadata.Embedded();
            md.publish(new SegmentDescriptor(
                    "mute",
                    "elsewhere",
                    "127.0.0.1",
                    stall.socket().getLocalPort(),
                    null,
                    0,
                    1 << 20,
                    List.of("tcp"),
                    List.of(),
                    null,
                    List.of(new SegmentDescriptor.Buffer(0, 1 << 20, "cpu:0", List.of()))));
            TransferConfig cfg = Engines.config("tcp", shm).withTimeout(Duration.ofMillis(800));
            try (TransferEngine a = new TransferEngine("a", md, 1 << 20, cfg)) {
                a.allocate(1 << 20, "cpu:0");
                long t0 = System.nanoTime();
                TransferBatch r = a.submit(
                                List.of(new TransferRequest(TransferRequest.Opcode.READ, 0, "mute", 0, 4096)))
                        .done()
                        .get(10, TimeUnit.SECONDS);
                double ms = (System.nanoTime() - t0) / 1e6;
                assertThat(r.status(0)).isEqualTo(TransferBatch.Status.TIMEOUT);
                assertThat(r.reason(0)).contains("800 ms");
                assertThat(ms).isBetween(700.0, 5000.0);
            }
        }
    }

    @Test
    void aBrokenShmPathIsDowngradedToTcpAndTheDataStillArrives() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = TransferConfig.defaults(Engines.SECRET, shm).withRetry(4, 2);
        // a's view of b says its segment file is larger than it is, so mapping it fails (as when the file
        // a container sees under /dev/shm is not the one the peer writes)
        try (TransferEngine b = new TransferEngine("b", md, 1 << 20, cfg);
                TransferEngine a = new TransferEngine(
                        "a",
                        new Redirect(
                                md,
                                "b",
                                d -> new SegmentDescriptor(
                                        d.name(),
                                        d.hostId(),
                                        d.rpcHost(),
                                        d.rpcPort(),
                                        d.shmFile(),
                                        d.baseAddress(),
                                        d.length() * 2,
                                        d.transports(),
                                        d.devices(),
                                        d.topology(),
                                        d.buffers())),
                        1 << 20,
                        cfg)) {
            MemorySegment abuf = a.allocate(1 << 20, "cpu:0");
            b.allocate(1 << 20, "cpu:0");
            Engines.fillRandom(abuf, 3);
            assertThat(a.openSegment("b")).as("same host: shm negotiated").isEqualTo("shm");
            TransferBatch r = a.submit(List.of(new TransferRequest(TransferRequest.Opcode.WRITE, 0, "b", 0, 1 << 20)))
                    .done()
                    .get(20, TimeUnit.SECONDS);
            assertThat(r.allCompleted()).as(r.firstProblem()).isTrue();
            assertThat(a.transportFor("b")).isEqualTo("tcp");
            assertThat(Engines.crc(b.segment())).isEqualTo(Engines.crc(abuf));
        }
    }
}
