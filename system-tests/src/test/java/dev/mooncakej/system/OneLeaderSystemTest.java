package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.kvtransfer.engine.CutProxy;
import dev.mooncakej.kvtransfer.engine.EtcdProcess;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * One leader (issue 23, item 6): two conductors on a real etcd, the leader reaching etcd through a
 * proxy the test pauses (a partition: connections stay open, nothing passes). Cut off for four times
 * its lease TTL, the leader stands down before its lease can lapse and the other is elected after it
 * lapsed: at no sample do both report leading, and at the end exactly one does. The new leader's
 * epoch is higher, and the deposed master refuses a store call that carries it.
 */
@Timeout(value = 4, unit = TimeUnit.MINUTES)
class OneLeaderSystemTest {
    private static final HttpClient HTTP = LeakCheckingClient.wrap(
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build());
    /**
     * The lease TTL (s). 2 s made a leader stand down on its own when a keep-alive came 1.0-1.2 s late
     * while another JVM started on this 2-core machine (a fresh-clone CI run, twice): 4 s leaves the rule
     * (stand down when not renewed for half the TTL) the same with room for that load.
     */
    private static final int TTL = 4;

    private static final String EPOCH = "X-Mooncakej-Leader-Epoch"; // the wire contract, as a client sees it

    private static ClusterProcess conductor(String name, Path dir, Path model, String etcd) throws Exception {
        return ClusterProcess.start(
                name,
                "conductor/target/mooncakej-conductor-exec.jar",
                dir,
                "--mooncakej.cluster.etcd-endpoints=" + etcd,
                "--mooncakej.cluster.lease-ttl-seconds=" + TTL,
                "--mooncakej.cluster.advertise-host=127.0.0.1",
                "--mooncakej.conductor.model=" + model);
    }

    /** 1 when the conductor reports leading (readiness UP), 0 when standing by, -1 when it did not answer. */
    private static int leads(ClusterProcess c) {
        try {
            int status = HTTP.send(
                            HttpRequest.newBuilder(URI.create(c.url() + "/actuator/health/readiness"))
                                    .timeout(Duration.ofSeconds(2))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString())
                    .statusCode();
            return status == 200 ? 1 : 0;
        } catch (Exception e) {
            return -1;
        }
    }

    private static long epoch(ClusterProcess c) throws Exception {
        HttpResponse<String> r = HTTP.send(
                ClusterProcess.request(c.url() + "/internal/leader")
                        .timeout(Duration.ofSeconds(10))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        return Long.parseLong(r.headers().firstValue(EPOCH).orElse("-1"));
    }

    private static void await(BooleanSupplier ok, int seconds, String what) throws Exception {
        long until = System.nanoTime() + seconds * 1_000_000_000L;
        while (!ok.getAsBoolean()) {
            if (System.nanoTime() > until) throw new AssertionError("timed out after " + seconds + " s: " + what);
            Thread.sleep(100);
        }
    }

    @Test
    void aLeaderCutOffFromEtcdStandsDownBeforeTheNextIsElected() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-one-leader");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        try (EtcdProcess etcd = new EtcdProcess();
                CutProxy proxy = new CutProxy(URI.create(etcd.url()).getPort(), Long.MAX_VALUE);
                ClusterProcess a = conductor("conductor-a", dir, model, "http://127.0.0.1:" + proxy.port())) {
            await(() -> leads(a) == 1, 120, "conductor A leads");
            try (ClusterProcess b = conductor("conductor-b", dir, model, etcd.url())) {
                await(() -> leads(b) == 0, 120, "conductor B stands by");
                long epochA = epoch(a);
                assertThat(epochA).as("the leader's epoch").isPositive();
                assertThat(epoch(b)).as("a standby's epoch").isZero();

                List<int[]> samples = new ArrayList<>();
                proxy.pause(true); // A is cut off from etcd; B still reaches it
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(4L * TTL);
                while (System.nanoTime() < until) {
                    samples.add(new int[] {leads(a), leads(b)});
                    Thread.sleep(50);
                }
                proxy.pause(false); // A reaches etcd again: B leads, A stays a standby
                until = System.nanoTime() + TimeUnit.SECONDS.toNanos(2L * TTL);
                while (System.nanoTime() < until) {
                    samples.add(new int[] {leads(a), leads(b)});
                    Thread.sleep(50);
                }
                assertThat(samples).as("samples").hasSizeGreaterThan(50);
                assertThat(samples)
                        .as("samples (A, B) where both report leading")
                        .noneMatch(s -> s[0] == 1 && s[1] == 1);
                assertThat(samples)
                        .as("every sample answered by both (A's health does not wait on etcd)")
                        .allMatch(s -> s[0] >= 0 && s[1] >= 0);
                int[] last = samples.get(samples.size() - 1);
                assertThat(last).as("at the end exactly one leads: B").containsExactly(0, 1);
                assertThat(a.logText()).contains("standing down before it can lapse");

                long epochB = epoch(b);
                assertThat(epochB).as("the new leader's epoch").isGreaterThan(epochA);
                // the deposed master is told of the newer epoch by any store call, and refuses it
                HttpResponse<String> mount = HTTP.send(
                        ClusterProcess.request(a.url() + "/internal/store/held")
                                .timeout(Duration.ofSeconds(10))
                                .header("Content-Type", "application/json")
                                .header(EPOCH, Long.toString(epochB))
                                .POST(HttpRequest.BodyPublishers.ofString("{}"))
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
                assertThat(mount.statusCode())
                        .as("a store call to the deposed master")
                        .isEqualTo(409);
                assertThat(mount.headers().firstValue(EPOCH))
                        .as("its epoch now")
                        .contains("0");
            }
        }
    }
}
