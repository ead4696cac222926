package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.net.http.HttpClient;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Issue 28's stream migration, by recompute: 20 streams of 200 tokens (half greedy, half sampled under
 * a seed: {@link ReferenceStreams}) on a simulated cluster of
 * one prefill and two decode workers (LLaMA3-70B timing, twice as slow, so a stream lasts seconds);
 * once every stream is under way, the decode worker holding the most of them is SIGKILLed. Every
 * stream completes, without an error event, with exactly the tokens of an undisturbed run of the same
 * request (the token lists compared, so a token lost or repeated shows), 200 of them in the usage;
 * the conductor counts the moves; the surviving decode worker takes the moved streams' history from the
 * KV pool itself (blocks written behind as they filled), computing only what the pool does not hold yet,
 * with no prefill worker between (one it cannot take goes through the prefill worker, which fetches
 * it); and the surviving worker holds no KV block afterwards.
 */
@Timeout(value = 8, unit = TimeUnit.MINUTES)
class MigrationSystemTest {
    private static final int STREAMS = 20, TOKENS = 200;

    private static double poolTokens(LocalCluster cluster) throws Exception {
        return LocalCluster.metric(cluster.url(), "mooncakej_prefix_hit_tokens_total{source=\"pool\"");
    }

    private static double placements(LocalCluster cluster, String via) throws Exception {
        double v = LocalCluster.metric(cluster.url(), "mooncakej_stream_placements_total{via=\"" + via + "\"");
        return Double.isNaN(v) ? 0 : v;
    }

    @Test
    void theStreamsOfAKilledDecodeWorkerGoOnElsewhereWithNoTokenLostOrRepeated() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-migration");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        HttpClient http = LeakCheckingClient.create();
        // two tenants with salts of their own: the reference run's finished sequences, in the KV pool,
        // are not the streamed run's; what a moved stream fetches its run wrote behind
        Path keys = Files.writeString(
                dir.resolve("api-keys"),
                "reference-run-key-0001 reference max-concurrent=64 salt\n"
                        + "streamed-run-key-0002 run max-concurrent=64 salt\n");
        try (LocalCluster cluster = LocalCluster.start(
                model,
                1,
                2,
                Map.of(),
                "--api-keys",
                keys.toString(),
                "--engine",
                "simulated",
                "--sim-time-scale",
                "2")) {
            ReferenceStreams streams = new ReferenceStreams(
                    http, cluster, STREAMS, TOKENS, "reference-run-key-0001", "streamed-run-key-0002");
            var reference = streams.reference();
            // the same requests streamed; a decode worker killed once every stream is under way
            ReferenceStreams.Run run = streams.stream();
            run.underWay(40); // each has a generated block or more
            int victim = streams.busiestDecode(2);
            long moved = (long) LocalCluster.metric(cluster.decodeUrl(victim), "mooncakej_decode_batch_size");
            System.out.println("killing decode worker " + victim + " (" + cluster.decodeUrl(victim) + "), which holds "
                    + moved + " of " + STREAMS + " streams");
            double poolBefore = poolTokens(cluster);
            String survivor = cluster.decodeUrl(1 - victim);
            ReferenceStreams.worker(cluster.port + 20 + victim).destroyForcibly();
            run.await(reference);
            // the surviving decode worker takes each moved stream's history from the pool itself; one it
            // cannot take (too little written behind yet) goes through the prefill worker, which fetches it
            double takenTokens = 32 * LocalCluster.metric(survivor, "mooncakej_decode_taken_blocks_total");
            double fetched = poolTokens(cluster) - poolBefore;
            double viaPool = placements(cluster, "pool"),
                    viaPrefill = placements(cluster, "prefill") + placements(cluster, "prefill_after_take");
            System.out.println("moved streams placed again: " + (long) viaPool + " taken from the KV pool by the"
                    + " decode worker (" + (long) takenTokens + " tokens read), " + (long) viaPrefill
                    + " through the prefill worker (" + (long) fetched + " tokens fetched)");
            assertThat(takenTokens + fetched) // each had a generated block or more written behind
                    .as("the moved streams took their history from the KV pool: a block or more each")
                    .isGreaterThanOrEqualTo(32.0 * moved);
            assertThat(viaPool)
                    .as("moved streams the surviving decode worker took from the pool itself, no prefill between")
                    .isGreaterThanOrEqualTo(1.0);
            assertThat(viaPool + viaPrefill)
                    .as("each moved stream placed again")
                    .isGreaterThanOrEqualTo(moved);
            assertThat(moved).as("the killed worker held streams").isPositive();
            assertThat(LocalCluster.metric(cluster.url(), "mooncakej_stream_migrations_total{reason=\"lost\""))
                    .as("each of its streams moved")
                    .isGreaterThanOrEqualTo(moved);
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (LocalCluster.metric(survivor, "mooncakej_kv_blocks_used") > 0 && System.nanoTime() < until)
                Thread.sleep(50);
            assertThat(LocalCluster.metric(survivor, "mooncakej_kv_blocks_used"))
                    .as("the surviving decode worker holds nothing")
                    .isZero();
            while (LocalCluster.metric(cluster.url(), "mooncakej_store_leased_blocks") > 0 && System.nanoTime() < until)
                Thread.sleep(50);
            assertThat(LocalCluster.metric(cluster.url(), "mooncakej_store_leased_blocks"))
                    .as("no reader's lease left in the store")
                    .isZero();
            assertThat(LocalCluster.metric(survivor, "mooncakej_decode_write_behind_blocks_total{outcome=\"written\""))
                    .as("blocks of its running streams written behind into the KV pool as they filled")
                    .isPositive();
        }
    }
}
