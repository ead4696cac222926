package dev.mooncakej.cli;

import dev.mooncakej.kvcache.cost.CostProfile;
import dev.mooncakej.scheduler.AdmissionMode;
import dev.mooncakej.scheduler.PrefillPolicy;
import dev.mooncakej.scheduler.SchedulerConfig;
import dev.mooncakej.simulator.ColocatedSimulation;
import dev.mooncakej.simulator.Plots;
import dev.mooncakej.simulator.Simulation;
import dev.mooncakej.simulator.SimulationConfig;
import dev.mooncakej.simulator.SimulationResult;
import dev.mooncakej.simulator.TraceRequest;
import dev.mooncakej.simulator.Traces;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.json.JsonMapper;

/** {@code ./mooncakej simulate}: replays a trace through the real scheduler on virtual time. */
@Command(
        name = "simulate",
        description = "Replay a Mooncake trace (or Poisson arrivals) through the scheduler on a simulated cluster "
                + "(LLaMA3-70B on 8xA800 per instance).")
final class SimulateCommand implements Runnable {
    @Option(names = "--trace", description = "Mooncake trace JSONL (../shared/traces/conversation_trace.jsonl)")
    Path trace;

    @Option(
            names = "--poisson",
            description = "instead of a trace: RATE,COUNT,IN_MIN,IN_MAX,OUT_MIN,OUT_MAX,CACHE_RATIO",
            split = ",")
    double[] poisson;

    @Option(
            names = "--policy",
            defaultValue = "kvcache-centric",
            description = "random, round-robin, least-loaded, longest-prefix, cache-aware, kvcache-centric")
    String policy;

    @Option(
            names = "--admission",
            defaultValue = "none",
            description = "none, early-rejection, predictive-early-rejection")
    String admission;

    @Option(names = "--prefill", defaultValue = "16")
    int prefill;

    @Option(names = "--decode", defaultValue = "16")
    int decode;

    @Option(names = "--ttft-slo", defaultValue = "30s")
    String ttftSlo;

    @Option(names = "--tbt-slo", defaultValue = "100ms")
    String tbtSlo;

    @Option(names = "--speed", defaultValue = "1")
    double speed;

    @Option(names = "--requests", defaultValue = "0", description = "the first N requests of the trace (0: all)")
    int requests;

    @Option(
            names = "--hop",
            defaultValue = "0ms",
            description = "the request path's own time before a first token reaches the client, added to every"
                    + " TTFT (live: the conductor's estimator ttft_overhead_seconds, GET /internal/estimators)")
    String hop;

    @Option(
            names = "--offset",
            defaultValue = "0",
            description = "skip the first N requests of the trace; arrivals count from the first one simulated")
    int offset;

    @Option(
            names = "--length-scale",
            defaultValue = "1",
            description =
                    "prompt and output lengths scaled by this, as ./mooncakej replay does (a hash id: 512 x this)")
    double lengthScale;

    @Option(
            names = "--max-input",
            defaultValue = "0",
            description = "prompts cut to at most this many tokens after scaling (0: none), as ./mooncakej replay does")
    int maxInput;

    @Option(
            names = "--cache-blocks",
            defaultValue = "6000",
            description =
                    "prefix cache per prefill instance, in 512-token blocks (0: unbounded); 6000 = 3M tokens, about "
                            + "1 TB of LLaMA3-70B KV")
    int cacheBlocks;

    @Option(names = "--decode-kv-gb", defaultValue = "60", description = "KV capacity of one decode instance, in GB")
    double decodeKvGb;

    @Option(names = "--bandwidth-gbps", defaultValue = "100", description = "KV transfer bandwidth in Gbit/s")
    double bandwidthGbps;

    @Option(
            names = "--threshold",
            defaultValue = "1.5",
            description = "kvcache-balancing-threshold (kvcache-centric): fetch when best/local prefix > this")
    double threshold;

    @Option(names = "--block-tokens", defaultValue = "512")
    int blockTokens;

    @Option(names = "--chunk-tokens", defaultValue = "4096")
    int chunkTokens;

    @Option(names = "--seed", defaultValue = "1")
    long seed;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Option(
            names = "--colocated",
            description = "simulate the colocated (vLLM-style) baseline on K instances instead of P/D")
    Integer colocated;

    @Option(
            names = "--chunked-prefill",
            defaultValue = "true",
            arity = "1",
            description = "colocated baseline: chunked prefill on or off")
    boolean chunkedPrefill;

    @Option(
            names = "--prefix-caching",
            defaultValue = "true",
            arity = "1",
            description = "colocated baseline: prefix caching on or off")
    boolean prefixCaching;

    @Option(
            names = "--cache-aware-routing",
            defaultValue = "true",
            arity = "1",
            description = "colocated baseline: route to the least queued work plus this prompt's uncached prefill"
                    + " (default true, as vLLM deployments behind a cache-aware router run)")
    boolean cacheAwareRouting;

    @Option(
            names = "--colocated-chunk-tokens",
            defaultValue = "2048",
            description = "colocated baseline: tokens of one forward pass with chunked prefill (vLLM's"
                    + " max_num_batched_tokens on its OpenAI server: 2048)")
    int colocatedChunkTokens;

    @Option(
            names = "--colocated-admission",
            defaultValue = "true",
            arity = "1",
            description = "colocated baseline: reject at arrival a request predicted over the TTFT SLO, as P/D does")
    boolean colocatedAdmission;

    @Option(names = "--noise", defaultValue = "0.1", description = "P/D: sigma of the true times' log-normal noise")
    double noise;

    @Option(
            names = "--estimate-factor",
            defaultValue = "1",
            description = "P/D: the scheduler's starting estimates are the profile's times times this (then learnt)")
    double estimateFactor;

    @Option(
            names = "--capacity",
            description = "FAST Fig. 1: sweep these speed factors (comma-separated) and report, per TBT SLO of 100,"
                    + " 200 and 300 ms, the highest at which --attainment of requests meet both SLOs, for P/D and"
                    + " each colocated variant on as many instances",
            split = ",")
    double[] capacity;

    @Option(
            names = "--all-policies",
            description =
                    "FAST Fig. 5: run every prefill policy and report each one's mean TTFT (a bar chart with --plot)")
    boolean allPolicies;

    @Option(names = "--attainment", defaultValue = "0.9", description = "--capacity: the SLO attainment target")
    double attainment;

    @Option(
            names = "--plot",
            description = "also write charts (PNG and SVG) into this folder: prefill and decode load over time for the "
                    + "three admission modes, and the effective request ratio at TBT SLOs of 100, 200 and "
                    + "300 ms")
    Path plot;

    @Override
    public void run() {
        if (capacity != null) {
            capacitySweep();
            return;
        }
        if (allPolicies) {
            policySweep();
            return;
        }
        SimulationResult r = run(this);
        Map<String, Object> out = toMap(r, this);
        if (plot != null) plots();
        if (json) {
            System.out.println(JsonMapper.builder().build().writeValueAsString(out));
        } else {
            out.forEach((k, v) -> System.out.printf("%-28s %s%n", k, v));
        }
    }

    private void plots() {
        String original = admission;
        Map<String, SimulationResult> byMode = new LinkedHashMap<>();
        for (String a : List.of("none", "early-rejection", "predictive-early-rejection")) {
            admission = a;
            byMode.put(a, run(this));
        }
        admission = original;
        String subtitle =
                prefill + "P+" + decode + "D, speed " + speed + ", " + decodeKvGb + " GB KV per decode instance";
        Plots.loadOverTime(byMode, false, subtitle, plot);
        Plots.loadOverTime(byMode, true, subtitle, plot);
        String tbt = tbtSlo;
        double[] slos = {100, 200, 300};
        double[] ratio = new double[slos.length];
        for (int i = 0; i < slos.length; i++) {
            tbtSlo = (int) slos[i] + "ms";
            ratio[i] = run(this).effectiveRequestRatio();
        }
        double[] colo = new double[slos.length];
        Integer k = colocated;
        colocated = prefill + decode;
        for (int i = 0; i < slos.length; i++) {
            tbtSlo = (int) slos[i] + "ms";
            colo[i] = run(this).effectiveRequestRatio();
        }
        colocated = k;
        tbtSlo = tbt;
        Map<String, double[][]> series = new LinkedHashMap<>();
        series.put(policy + " P/D (" + prefill + "P+" + decode + "D)", new double[][] {slos, ratio});
        series.put(
                "colocated (" + (prefill + decode) + " instances, chunked prefill, prefix caching)",
                new double[][] {slos, colo});
        Plots.effectiveRatio(series, "speed " + speed, plot);
        System.err.println("charts written to " + plot);
    }

    /** FAST Fig. 5: every prefill policy on the same workload; mean TTFT each (and a bar chart). */
    private void policySweep() {
        String saved = policy;
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, Double> ttft = new LinkedHashMap<>();
        for (PrefillPolicy p : PrefillPolicy.values()) {
            policy = p.cliName();
            SimulationResult r = run(this);
            out.put(policy, toMap(r, this));
            ttft.put(policy, r.ttftMeanSeconds());
        }
        policy = saved;
        if (plot != null) {
            Plots.ttftByPolicy(ttft, prefill + "P+" + decode + "D, speed " + speed, plot);
            System.err.println("chart written to " + plot);
        }
        if (json) System.out.println(JsonMapper.builder().build().writeValueAsString(out));
        else ttft.forEach((k, v) -> System.out.printf("%-20s %.3f s%n", k, v));
    }

    /** FAST Fig. 1: the highest swept speed meeting the attainment target, per system and TBT SLO. */
    private void capacitySweep() {
        if (!(attainment > 0 && attainment <= 1))
            throw new IllegalArgumentException("--attainment " + attainment + ": expected a share in (0, 1]");
        double[] speeds = capacity.clone();
        Arrays.sort(speeds);
        double savedSpeed = speed;
        String savedTbt = tbtSlo;
        Integer savedColocated = colocated;
        boolean savedChunked = chunkedPrefill, savedCaching = prefixCaching;
        double[] slos = {100, 200, 300};
        String[][] systems = {
            {"P/D " + prefill + "P+" + decode + "D (" + policy + ")", null, null},
            {"colocated x" + (prefill + decode) + ", chunked prefill, prefix caching", "true", "true"},
            {"colocated x" + (prefill + decode) + ", no chunked prefill", "false", "true"},
            {"colocated x" + (prefill + decode) + ", no prefix caching", "true", "false"}
        };
        Map<String, Object> out = new LinkedHashMap<>();
        Map<String, double[][]> series = new LinkedHashMap<>();
        for (String[] sys : systems) {
            colocated = sys[1] == null ? null : prefill + decode;
            chunkedPrefill = sys[1] == null || Boolean.parseBoolean(sys[1]);
            prefixCaching = sys[2] == null || Boolean.parseBoolean(sys[2]);
            Map<String, Object> bySlo = new LinkedHashMap<>();
            double[] cap = new double[slos.length];
            for (int i = 0; i < slos.length; i++) {
                tbtSlo = (int) slos[i] + "ms";
                double best = 0;
                Map<String, Double> ratios = new LinkedHashMap<>();
                for (double s : speeds) {
                    speed = s;
                    double r = run(this).effectiveRequestRatio();
                    ratios.put(String.valueOf(s), Math.round(r * 1000) / 1000.0);
                    System.err.printf("\rcapacity: %s, TBT SLO %s, speed %s: %.3f  ", sys[0], tbtSlo, s, r);
                    if (r >= attainment) best = s;
                    else break; // past the capacity: higher loads only meet fewer
                }
                cap[i] = best;
                bySlo.put(tbtSlo, Map.of("capacity_speed", best, "attainment_by_speed", ratios));
            }
            out.put(sys[0], bySlo);
            series.put(sys[0], new double[][] {slos, cap});
        }
        speed = savedSpeed;
        tbtSlo = savedTbt;
        colocated = savedColocated;
        chunkedPrefill = savedChunked;
        prefixCaching = savedCaching;
        System.err.println();
        if (plot != null) {
            Plots.capacity(series, "attainment " + attainment + ", TTFT SLO " + ttftSlo, plot);
            System.err.println("chart written to " + plot);
        }
        if (json) System.out.println(JsonMapper.builder().build().writeValueAsString(out));
        else out.forEach((k, v) -> System.out.printf("%-56s %s%n", k, v));
    }

    static SimulationResult run(SimulateCommand c) {
        List<TraceRequest> reqs;
        if (c.trace != null) {
            reqs = Traces.window(Traces.read(c.trace, c.speed), c.offset, c.requests);
            if (!(c.lengthScale > 0 && c.lengthScale <= 1))
                throw new IllegalArgumentException("--length-scale " + c.lengthScale + ": expected a factor in (0, 1]");
            if (c.maxInput < 0) throw new IllegalArgumentException("--max-input " + c.maxInput + ": expected >= 0");
            if (c.lengthScale != 1 || c.maxInput > 0) {
                double f = c.lengthScale;
                reqs = reqs.stream()
                        .map(r -> new TraceRequest(
                                r.index(),
                                r.arrival(),
                                ReplayCommand.scaledInput(r.inputTokens(), f, c.maxInput),
                                Math.max(1, (int) Math.round(r.outputTokens() * f)),
                                r.blocks()))
                        .toList();
            }
        } else if (c.poisson != null && c.poisson.length == 7) {
            double[] p = c.poisson;
            reqs = Traces.poisson(
                    (int) p[1],
                    p[0] * c.speed,
                    (int) p[2],
                    (int) p[3],
                    (int) p[4],
                    (int) p[5],
                    p[6],
                    c.blockTokens,
                    c.seed);
        } else {
            throw new IllegalArgumentException(
                    "give --trace FILE, or --poisson RATE,COUNT,IN_MIN,IN_MAX,OUT_MIN,OUT_MAX,CACHE_RATIO");
        }
        // a hash id spans 512 tokens of the trace, 512 x length-scale once scaled
        int bt = c.trace != null && c.lengthScale != 1
                ? Math.max(1, (int) Math.round(c.blockTokens * c.lengthScale))
                : c.blockTokens;
        CostProfile profile = CostProfile.llama3_70bOn8xA800();
        double td =
                profile.decodeStepSeconds(16, 16 * 8192L) * 200; // first guess: 200 tokens at a mid batch; then learnt
        SchedulerConfig sc = new SchedulerConfig(
                PrefillPolicy.parse(c.policy),
                AdmissionMode.parse(c.admission),
                seconds(c.ttftSlo, "--ttft-slo"),
                seconds(c.tbtSlo, "--tbt-slo"),
                c.threshold,
                bt,
                profile,
                c.bandwidthGbps * 1e9 / 8,
                (long) (c.decodeKvGb * 1e9 / profile.kvBytesPerToken()),
                td,
                c.seed);
        if (c.colocated != null) {
            if (c.colocated < 1)
                throw new IllegalArgumentException("--colocated " + c.colocated + ": expected at least 1 instance");
            return new ColocatedSimulation(
                            profile,
                            c.colocated,
                            bt,
                            c.colocatedChunkTokens,
                            c.chunkedPrefill,
                            c.prefixCaching,
                            c.cacheBlocks,
                            sc.decodeKvTokens(),
                            sc.ttftSlo(),
                            sc.tbtSlo(),
                            c.cacheAwareRouting,
                            c.colocatedAdmission)
                    .run(reqs);
        }
        int total = reqs.size();
        Simulation sim = new Simulation(
                new SimulationConfig(
                        sc,
                        c.prefill,
                        c.decode,
                        c.cacheBlocks,
                        c.chunkTokens,
                        c.noise,
                        c.estimateFactor,
                        seconds(c.hop, "--hop")),
                reqs,
                n -> {
                    if (!c.json) System.err.printf("\r%d / %d requests", n, total);
                });
        long t0 = System.nanoTime();
        SimulationResult r = sim.run();
        if (!c.json)
            System.err.printf(
                    "\rsimulated %d requests in %.1f s wall time%n", reqs.size(), (System.nanoTime() - t0) / 1e9);
        return r;
    }

    static Map<String, Object> toMap(SimulationResult r, SimulateCommand c) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put(
                "system",
                c.colocated != null
                        ? "colocated x" + c.colocated + (c.chunkedPrefill ? ", chunked prefill" : "")
                                + (c.prefixCaching ? ", prefix caching" : "")
                        : "P/D " + c.prefill + "P+" + c.decode + "D");
        m.put("policy", c.colocated != null ? "-" : c.policy);
        m.put("admission", c.colocated != null ? "-" : c.admission);
        m.put("requests", r.requests());
        m.put("completed", r.completed());
        m.put("rejected", r.rejected());
        m.put("rejected_at_arrival", r.rejectedAtArrival());
        m.put("rejected_after_prefill", r.rejectedAfterPrefill());
        m.put("ttft_mean_s", round(r.ttftMeanSeconds()));
        m.put("ttft_p90_s", round(r.ttftP90Seconds()));
        m.put("tbt_p90_s", round(r.tbtP90Seconds()));
        m.put("effective_request_ratio", round(r.effectiveRequestRatio()));
        m.put("goodput", r.goodput());
        m.put("wasted_prefill_seconds", round(r.wastedPrefillSeconds()));
        m.put("decode_load_std", round(r.decodeLoadStd()));
        m.put("prefix_hit_ratio_blocks", round(r.prefixHitRatioBlocks()));
        m.put("prefix_hit_ratio_tokens", round(r.prefixHitRatioTokens()));
        m.put("prefill_busy_seconds", round(r.prefillBusySeconds()));
        m.put("prefill_utilisation", round(r.prefillUtilisation()));
        m.put("simulated_seconds", round(r.simulatedSeconds()));
        return m;
    }

    static double seconds(String v, String option) {
        try {
            if (v.endsWith("ms")) return Double.parseDouble(v.substring(0, v.length() - 2)) / 1000;
            if (v.endsWith("s")) return Double.parseDouble(v.substring(0, v.length() - 1));
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + " " + v + ": expected a duration like 30s or 100ms");
        }
    }

    private static double round(double v) {
        return Math.round(v * 10000) / 10000.0;
    }
}
