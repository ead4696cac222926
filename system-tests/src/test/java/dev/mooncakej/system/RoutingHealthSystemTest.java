package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.kvcache.BlockKeys;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Routing health (issue 24, item 7) on {@code ./mooncakej up}: a worker that breaks the block-key
 * contract is refused at admission by name and routing turns DEGRADED; a worker whose reported prefix
 * hits stop while the conductor still predicts them turns routing DEGRADED within 30 s.
 */
@Timeout(value = 6, unit = TimeUnit.MINUTES)
class RoutingHealthSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private static Path tinyModel() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-routing");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        return model;
    }

    /** The public health of routing: its status only. */
    private static JsonNode routing(LocalCluster c) throws Exception {
        return JSON.readTree(LocalCluster.get(c.url() + "/actuator/health/routing"));
    }

    /** The internal view (cluster credential): which workers, and why. */
    private static JsonNode routingDetails(LocalCluster c) throws Exception {
        return JSON.readTree(LocalCluster.get(c.url() + "/internal/routing"));
    }

    @Test
    void aWorkerWithAnotherBlockSizeIsRefusedByNameAndRoutingIsDegraded() throws Exception {
        // the prefill worker cuts blocks of 16 tokens, the conductor (and the decode worker) of 32
        try (LocalCluster c = LocalCluster.start(
                tinyModel(),
                1,
                1,
                Map.of("MOONCAKEJ_PREFILL_BLOCKTOKENS", "16", "MOONCAKEJ_PREFILL_CALIBRATIONSECONDS", "0"),
                "--engine",
                "simulated",
                "--sim-time-scale",
                "10")) {
            JsonNode health = routing(c);
            assertThat(health.path("status").asString())
                    .as("routing health: %s", health)
                    .isEqualTo("DEGRADED");
            JsonNode details = routingDetails(c);
            assertThat(details.path("degraded").path(c.prefillUrl(0)).asString())
                    .as("the refused worker, named, with why: %s", details)
                    .contains("refused at admission")
                    .contains("16");
            assertThat(health.toString()).as("no address on the public health").doesNotContain("127.0.0.1");
            assertThat(c.log("conductor"))
                    .contains("prefill worker " + c.prefillUrl(0))
                    .containsPattern("(?i)refused");
            // nothing is routed to it: the request is answered 503 naming the missing prefill worker
            HttpResponse<String> r = LocalCluster.post(
                    c.url() + "/v1/completions",
                    "{\"model\":\"mooncakej-tiny\",\"prompt\":\"hello\",\"max_tokens\":2}");
            assertThat(r.statusCode()).as(r.body()).isEqualTo(503);
            assertThat(r.body()).contains("no_workers");
        }
    }

    @Test
    void predictedHitsThatStopComingTurnRoutingDegradedWithin30Seconds() throws Exception {
        Path model = tinyModel();
        try (LocalCluster c =
                LocalCluster.start(model, 1, 1, Map.of(), "--engine", "simulated", "--sim-time-scale", "10")) {
            // UNKNOWN until the conductor has admitted both workers (its membership poll runs beside startup)
            JsonNode start = routing(c);
            for (long t = System.nanoTime();
                    "UNKNOWN".equals(start.path("status").asString()) && System.nanoTime() - t < 20e9; ) {
                Thread.sleep(200);
                start = routing(c);
            }
            assertThat(start.path("status").asString())
                    .as("routing health: %s", start)
                    .isEqualTo("UP");
            // The prefill worker's report stream tells the conductor it holds the blocks of four prompts it
            // never computed (what a worker whose cache was wiped, or whose keys disagree, looks like from
            // the conductor): the events are signed with the cluster credential, as the worker's own are.
            BlockKeys keys = new BlockKeys(GgufFile.keyIdentity(model), 32);
            Random rnd = new Random(11);
            List<List<Integer>> prompts = new ArrayList<>();
            List<Long> claimed = new ArrayList<>();
            for (int p = 0; p < 4; p++) {
                int[] ids = new int[200];
                for (int i = 0; i < ids.length; i++) ids[i] = 1 + rnd.nextInt(250); // vocabulary: 256
                List<Integer> list = new ArrayList<>();
                for (int id : ids) list.add(id);
                prompts.add(list);
                for (long k : keys.keys(ids)) claimed.add(k);
            }
            HttpResponse<String> events = LocalCluster.post(
                    c.url() + "/internal/kv-events",
                    JSON.writeValueAsString(
                            Map.of("worker", c.prefillUrl(0), "stored", claimed, "evicted", List.of())));
            assertThat(events.statusCode()).as(events.body()).isEqualTo(204);
            long t0 = System.nanoTime();
            for (List<Integer> prompt : prompts) {
                HttpResponse<String> r = LocalCluster.post(
                        c.url() + "/v1/completions",
                        JSON.writeValueAsString(Map.of("model", "mooncakej-tiny", "prompt", prompt, "max_tokens", 2)));
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                assertThat(JSON.readTree(r.body())
                                .path("usage")
                                .path("prompt_tokens_details")
                                .path("cached_tokens")
                                .asInt())
                        .as("what the worker reused: none of the claimed blocks")
                        .isZero();
            }
            JsonNode health = routing(c);
            while (!"DEGRADED".equals(health.path("status").asString()) && System.nanoTime() - t0 < 30e9) {
                Thread.sleep(500);
                health = routing(c);
            }
            assertThat(health.path("status").asString())
                    .as("routing health within 30 s of predicted hits that did not come: %s", health)
                    .isEqualTo("DEGRADED");
            assertThat(routingDetails(c).path("degraded").path(c.prefillUrl(0)).asString())
                    .isNotEmpty();
            assertThat(c.log("conductor")).contains("routing degraded on " + c.prefillUrl(0));
        }
    }
}
