package dev.mooncakej.bench;

import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.ClusterScheduler;
import dev.mooncakej.scheduler.Decision;
import dev.mooncakej.scheduler.PrefillPolicy;
import dev.mooncakej.scheduler.SchedulerConfig;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One kvcache-centric scheduling decision with predictive admission on 63 prefill (the prefix
 * index's most: one bit each, one for the KV pool) and 64 decode
 * instances whose caches index 1,000,000 blocks, for a 32-block prompt whose prefix is partly cached
 * (SampleTime gives p99; -prof gc the allocation per decision).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(
        value = 1,
        jvmArgsAppend = {"-Xmx2g"})
public class SchedulerDecisionBenchmark {
    private ClusterScheduler scheduler;
    private long[][] prompts;
    private int next;

    @Setup(Level.Trial)
    public void setUp() {
        SchedulerConfig cfg = new SchedulerConfig(
                PrefillPolicy.KVCACHE_CENTRIC,
                AdmissionMode.PREDICTIVE_EARLY_REJECTION,
                30,
                0.1,
                1.5,
                512,
                CostProfile.llama3_70bOn8xA800(),
                12.5e9,
                200_000,
                60,
                1);
        scheduler = new ClusterScheduler(cfg, ClusterScheduler.MAX_PREFILL, 64, 0);
        SplittableRandom rnd = new SplittableRandom(7);
        long id = 0;
        // ~1,000,000 indexed blocks: 63 instances x 15,875 blocks, as chains of 25 blocks sharing popular first blocks
        for (int inst = 0; inst < ClusterScheduler.MAX_PREFILL; inst++) {
            for (int c = 0; c < 635; c++) {
                long[] chain = new long[25];
                for (int b = 0; b < 25; b++) chain[b] = b < 2 ? rnd.nextInt(50) * 1000L + b : 10_000_000L + id++;
                scheduler.prefill(inst).cache(chain);
            }
            scheduler.prefill(inst).touch(new long[0], 0);
        }
        prompts = new long[256][];
        for (int i = 0; i < prompts.length; i++) {
            long[] p = new long[32];
            long start = 10_000_000L + rnd.nextInt(900_000);
            for (int b = 0; b < 32; b++)
                p[b] = b < 12 ? start + b : 50_000_000L + i * 100 + b; // a cached 12-block run, then new
            prompts[i] = p;
        }
    }

    @Benchmark
    public Decision decide() {
        long[] p = prompts[next++ & 255];
        return scheduler.decide(p, 32 * 512, 100.0);
    }
}
