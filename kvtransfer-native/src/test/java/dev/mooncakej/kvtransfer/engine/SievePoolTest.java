package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.spi.SievePool;
import dev.mooncakej.kvtransfer.spi.Topology;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** SIEVE eviction of the endpoint pool (alone and inside the engine), and the topology matrix's path choice. */
class SievePoolTest {
    @TempDir
    Path shm;

    @Test
    void theEnginesEndpointPoolConnectsLazilyAndStaysWithinItsCap() throws Exception {
        SegmentMetadata md = new SegmentMetadata.Embedded();
        TransferConfig cfg = Engines.config("tcp", shm).withConnections(1, 2);
        try (TransferEngine a = new TransferEngine("a", md, 1 << 20, cfg);
                TransferEngine p0 = new TransferEngine("p0", md, 1 << 20, cfg);
                TransferEngine p1 = new TransferEngine("p1", md, 1 << 20, cfg);
                TransferEngine p2 = new TransferEngine("p2", md, 1 << 20, cfg)) {
            var buf = a.allocate(1 << 20, "cpu:0");
            Engines.fillRandom(buf, 4);
            for (TransferEngine p : List.of(p0, p1, p2)) p.allocate(1 << 20, "cpu:0");
            assertThat(a.openSegment("p0")).isEqualTo("tcp");
            assertThat(a.tcpConnects())
                    .as("opening a segment connects nothing yet")
                    .isZero();
            for (int round = 0; round < 3; round++) {
                for (String peer : List.of("p0", "p1", "p2")) {
                    a.transfer(List.of(new TransferRequest(TransferRequest.Opcode.WRITE, 0, peer, 0, 1 << 20)));
                    assertThat(a.tcpEndpoints()).isLessThanOrEqualTo(2);
                }
            }
            assertThat(a.tcpEvictions()).as("three peers through a pool of two").isPositive();
            for (TransferEngine p : List.of(p0, p1, p2))
                assertThat(Engines.crc(p.segment())).isEqualTo(Engines.crc(buf));
        }
    }

    @Test
    void evictsTheOldestUnvisitedAndSparesVisitedOnes() {
        List<String> evicted = new ArrayList<>();
        SievePool<String, String> pool = new SievePool<>(3, evicted::add);
        pool.get("a", k -> k);
        pool.get("b", k -> k);
        pool.get("c", k -> k);
        pool.get("a", k -> "new-a"); // hit: visited, same value
        assertThat(pool.get("a", k -> "other")).isEqualTo("a");
        pool.get("d", k -> k); // hand from the oldest: a visited (cleared), b unvisited: evicted
        assertThat(evicted).containsExactly("b");
        pool.get("e", k -> k); // hand continues at c: unvisited, evicted
        assertThat(evicted).containsExactly("b", "c");
        pool.get("f", k -> k); // hand at d (unvisited): evicted; a's bit was cleared but the hand has not come back yet
        assertThat(evicted).containsExactly("b", "c", "d");
        pool.get("g", k -> k); // hand at e: evicted
        pool.get("h", k -> k); // hand at f: evicted; a, never revisited, survives until the hand wraps
        assertThat(evicted).containsExactly("b", "c", "d", "e", "f");
        pool.get("a", k -> k); // visited again
        pool.get("i", k -> k); // hand at g (unvisited): evicted
        pool.get("j", k -> k); // hand at h: evicted
        pool.get("k", k -> k); // hand at i: evicted; the visited a is still spared
        assertThat(evicted).containsExactly("b", "c", "d", "e", "f", "g", "h", "i");
        assertThat(pool.contains("a")).isTrue();
        assertThat(pool.size()).isEqualTo(3);
        assertThat(pool.remove("j", "j")).isTrue();
        assertThat(pool.remove("k", "not-k")).isFalse();
        assertThat(pool.evictions()).isEqualTo(8);
    }

    @Test
    void topologyPrefersLocalDevicesThenWalksAllOnRetry() {
        Topology t = Topology.of(
                new LinkedHashMap<>(Map.of("mlx5_0", 0)) {
                    {
                        put("mlx5_1", 0);
                        put("mlx5_2", 1);
                    }
                },
                2);
        assertThat(t.matrix().get("cpu:0")).containsExactly(List.of("mlx5_0", "mlx5_1"), List.of("mlx5_2"));
        assertThat(t.matrix().get("cpu:1")).containsExactly(List.of("mlx5_2"), List.of("mlx5_0", "mlx5_1"));
        for (int i = 0; i < 20; i++) assertThat(t.select("cpu:0", 0)).isIn("mlx5_0", "mlx5_1");
        assertThat(t.select("cpu:0", 1)).isEqualTo("mlx5_0");
        assertThat(t.select("cpu:0", 2)).isEqualTo("mlx5_1");
        assertThat(t.select("cpu:0", 3)).isEqualTo("mlx5_2");
        assertThat(t.select("cpu:0", 4)).isEqualTo("mlx5_0");
        assertThat(Topology.of(Map.of(), 1).select("cpu:0", 0)).isNull();
    }
}
