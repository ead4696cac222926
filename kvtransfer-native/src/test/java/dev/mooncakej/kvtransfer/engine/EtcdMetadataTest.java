package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Segment metadata in a real etcd (Debian's etcd-server, started here on loopback): a peer process
 * registers its segment under a 2 s lease; this process looks it up, sees it in a watch, reads its
 * memory over tcp; the peer is killed and its segment disappears when the lease ends.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class EtcdMetadataTest {
    @TempDir
    Path shm;

    @Test
    void registrationLookupWatchAndLeaseExpiryOfAKilledProcess() throws Exception {
        try (EtcdProcess etcd = new EtcdProcess();
                EtcdSegmentMetadata md =
                        new EtcdSegmentMetadata(List.of(etcd.url()), "mooncakej-test/", 2, Duration.ofSeconds(5))) {
            List<String> events = new CopyOnWriteArrayList<>();
            md.watch((name, d) -> events.add(name + (d == null ? ":gone" : ":" + d.rpcPort())));
            Process peer = Engines.childJvm(
                            PeerMain.class,
                            "etcd-peer",
                            String.valueOf(1 << 20),
                            shm.toString(),
                            "127.0.0.1",
                            etcd.url())
                    .start();
            try {
                SegmentDescriptor printed = DescriptorJson.read(
                        new BufferedReader(new InputStreamReader(peer.getInputStream())).readLine(), "the peer");
                SegmentDescriptor found = await(() -> md.lookup("etcd-peer").orElse(null), "lookup");
                assertThat(found).isEqualTo(printed);
                await(
                        () -> events.contains("etcd-peer:" + printed.rpcPort()) ? true : null,
                        "watch event for the registration");
                // a transfer through the looked-up descriptor
                TransferConfig cfg =
                        TransferConfig.defaults(Engines.SECRET, shm).withTransports(List.of("tcp"));
                try (TransferEngine a = new TransferEngine("reader", md, 1 << 20, cfg)) {
                    MemorySegment local = a.allocate(4096, "cpu:0");
                    a.transfer(List.of(new TransferRequest(
                            TransferRequest.Opcode.READ, a.offsetOf(local), "etcd-peer", 1000, 4096)));
                    for (int i = 0; i < 4096; i++)
                        assertThat(local.get(ValueLayout.JAVA_BYTE, i)).isEqualTo((byte) ((1000 + i) * 31L % 251));
                    assertThat(md.lookup("reader"))
                            .as("our own segment is in etcd too")
                            .isPresent();
                }
                long killed = System.nanoTime();
                peer.destroyForcibly().waitFor();
                await(() -> events.contains("etcd-peer:gone") ? true : null, "watch event for the lease's end");
                double s = (System.nanoTime() - killed) / 1e9;
                System.out.printf("segment of the killed process removed after %.2f s (lease TTL 2 s)%n", s);
                assertThat(s).isLessThan(8);
                assertThat(md.lookup("etcd-peer")).isEmpty();
            } finally {
                peer.destroyForcibly();
            }
        }
    }

    /**
     * A read of etcd that returned an older version of a descriptor (a lookup racing the watch) does not
     * overwrite the newer one already delivered, nor bring back one deleted since. Before, the last to
     * arrive won: a decode worker's descriptor without its KV buffers could stay for good, and a prefill
     * worker's writes to those blocks were refused as "remote range not inside a registered buffer"
     * (TlsClusterSystemTest, once; this file's first test once, without the watch's start revision).
     */
    @Test
    void anOlderVersionNeverOverwritesANewerOne() throws Exception {
        try (EtcdProcess etcd = new EtcdProcess();
                EtcdSegmentMetadata md =
                        new EtcdSegmentMetadata(List.of(etcd.url()), "mooncakej-race/", 5, Duration.ofSeconds(5))) {
            String key = "mooncakej-race/ram/racer";
            String withBuffer =
                    DescriptorJson.write(descriptor(List.of(new SegmentDescriptor.Buffer(0, 4096, "cpu:0", null))));
            String without = DescriptorJson.write(descriptor(List.of()));
            md.accept(key, withBuffer, 7); // the watch delivered revision 7
            md.accept(key, without, 5); // then a lookup's read of revision 5 arrives
            assertThat(md.lookup("racer").orElseThrow().registered(0, 4096))
                    .as("the newer descriptor stays")
                    .isTrue();
            md.accept(key, without, 9); // a newer version does replace it
            assertThat(md.lookup("racer").orElseThrow().registered(0, 4096)).isFalse();
        }
    }

    private static SegmentDescriptor descriptor(List<SegmentDescriptor.Buffer> buffers) {
        return new SegmentDescriptor(
                "racer", "host", "127.0.0.1", 1, "/dev/shm/racer", 0, 4096, List.of("tcp"), null, null, buffers);
    }

    @Test
    void badSettingsAndAnUnreachableEtcdAreClearErrors() {
        assertThatThrownBy(() -> new EtcdSegmentMetadata(List.of(), "p/", 2, Duration.ofSeconds(1)))
                .hasMessageContaining("endpoints");
        assertThatThrownBy(() -> new EtcdSegmentMetadata(List.of("http://127.0.0.1:1"), "p/", 0, Duration.ofSeconds(1)))
                .hasMessageContaining("TTL 0");
        assertThatThrownBy(
                        () -> new EtcdSegmentMetadata(List.of("http://127.0.0.1:1"), "p/", 2, Duration.ofMillis(500)))
                .hasMessageContaining("cannot reach etcd");
    }

    static <T> T await(Supplier<T> f, String what) throws InterruptedException {
        long until = System.nanoTime() + 15_000_000_000L;
        while (System.nanoTime() < until) {
            T v = f.get();
            if (v != null) return v;
            Thread.sleep(50);
        }
        throw new AssertionError("timed out waiting for " + what);
    }
}
