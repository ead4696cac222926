package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 28's stream migration, by recompute: 20 greedy streams of 200 tokens on a simulated cluster of
 * one prefill and two decode workers (LLaMA3-70B timing, twice as slow, so a stream lasts seconds);
 * once every stream is under way, the decode worker holding the most of them is SIGKILLed. Every
 * stream completes, without an error event, with exactly the tokens of an undisturbed run of the same
 * request (the token lists compared, so a token lost or repeated shows), 200 of them in the usage;
 * the conductor counts the moves, and the surviving worker holds no KV block afterwards.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class MigrationSystemTest {
    private static final int STREAMS = 20, TOKENS = 200;

    @Test
    void theStreamsOfAKilledDecodeWorkerGoOnElsewhereWithNoTokenLostOrRepeated() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-migration");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        HttpClient http = LeakCheckingClient.create();
        try (LocalCluster cluster =
                LocalCluster.start(model, 1, 2, Map.of(), "--engine", "simulated", "--sim-time-scale", "2")) {
            GreedyStreams streams = new GreedyStreams(http, cluster, STREAMS, TOKENS);
            List<List<String>> reference = streams.reference();
            // the same requests streamed; a decode worker killed once every stream is under way
            GreedyStreams.Run run = streams.stream();
            run.underWay(10);
            int victim = streams.busiestDecode(2);
            long moved = (long) LocalCluster.metric(cluster.decodeUrl(victim), "mooncakej_decode_batch_size");
            System.out.println("killing decode worker " + victim + " (" + cluster.decodeUrl(victim) + "), which holds "
                    + moved + " of " + STREAMS + " streams");
            GreedyStreams.worker(cluster.port + 20 + victim).destroyForcibly();
            run.await(reference);
            assertThat(moved).as("the killed worker held streams").isPositive();
            assertThat(LocalCluster.metric(cluster.url(), "mooncakej_stream_migrations_total{reason=\"lost\""))
                    .as("each of its streams moved")
                    .isGreaterThanOrEqualTo(moved);
            String survivor = cluster.decodeUrl(1 - victim);
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (LocalCluster.metric(survivor, "mooncakej_kv_blocks_used") > 0 && System.nanoTime() < until)
                Thread.sleep(50);
            assertThat(LocalCluster.metric(survivor, "mooncakej_kv_blocks_used"))
                    .as("the surviving decode worker holds nothing")
                    .isZero();
        }
    }
}
