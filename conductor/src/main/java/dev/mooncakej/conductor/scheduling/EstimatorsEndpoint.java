package dev.mooncakej.conductor.scheduling;

import dev.mooncakej.scheduler.LiveScheduler;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.ToDoubleFunction;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/**
 * What the live scheduler has learnt, for dashboards and for {@code ./mooncakej replay}: the fitted
 * prefill-time coefficients (c0 + c1 (n - p) + c2 (n^2 - p^2)), the fitted decode-step (TBT) model, the
 * learnt decode duration t_d, each transfer path's measured bandwidth, and how far the TTFT and TBT
 * predictions were from what happened (p50 and p99 of the relative error) — as metrics, and as JSON
 * on the internal plane.
 */
@RestController
public class EstimatorsEndpoint {
    private final LiveScheduler scheduler;
    private final MultiGauge paths;

    public EstimatorsEndpoint(LiveScheduler scheduler, MeterRegistry meters) {
        this.scheduler = scheduler;
        gauge(
                meters,
                "mooncakej.estimator.prefill.c0",
                "seconds",
                s -> s.core().prefillModel().c0());
        gauge(
                meters,
                "mooncakej.estimator.prefill.c1",
                "seconds per token",
                s -> s.core().prefillModel().c1());
        gauge(
                meters,
                "mooncakej.estimator.prefill.c2",
                "seconds per token squared",
                s -> s.core().prefillModel().c2());
        gauge(
                meters,
                "mooncakej.estimator.decode.base",
                "seconds per step",
                s -> s.core().decodeModel().base());
        gauge(
                meters,
                "mooncakej.estimator.decode.per.sequence",
                "seconds per step and sequence",
                s -> s.core().decodeModel().perSequence());
        gauge(
                meters,
                "mooncakej.estimator.decode.per.context.token",
                "seconds per step and context token",
                s -> s.core().decodeModel().perContextToken());
        Gauge.builder(
                        "mooncakej.estimator.decode.duration",
                        scheduler,
                        s -> s.core().decodeSecondsEstimate())
                .description("t_d, the predicted decode duration of a request")
                .baseUnit("seconds")
                .register(meters);
        // the p50 and p99 over a sliding window as gauges labelled "stat": "quantile" is reserved for summaries
        for (double q : new double[] {0.5, 0.99}) {
            String stat = q == 0.5 ? "p50" : "p99";
            Gauge.builder("mooncakej.estimator.ttft.error", scheduler, s -> s.ttftError(q))
                    .description("relative error of the TTFT prediction, |predicted - actual| / actual, "
                            + "over the last 128 requests")
                    .baseUnit("ratio")
                    .tag("stat", stat)
                    .register(meters);
            Gauge.builder("mooncakej.estimator.tbt.error", scheduler, s -> s.tbtError(q))
                    .description("relative error of the TBT prediction, |predicted - actual| / actual, "
                            + "over the last 128 requests")
                    .baseUnit("ratio")
                    .tag("stat", stat)
                    .register(meters);
        }
        this.paths = MultiGauge.builder("mooncakej.estimator.path.bandwidth")
                .description("measured KV transfer bandwidth per path (source -> destination), one write in flight")
                .baseUnit("bytes_per_second")
                .register(meters);
        Thread.ofPlatform().daemon().name("estimator-paths").start(this::refreshPaths);
    }

    private void gauge(MeterRegistry meters, String name, String unit, ToDoubleFunction<LiveScheduler> f) {
        Gauge.builder(name, scheduler, f).description(unit).register(meters);
    }

    private void refreshPaths() {
        while (true) {
            try {
                Thread.sleep(2000);
                paths.register(
                        scheduler.pathBandwidths().entrySet().stream()
                                .map(e -> MultiGauge.Row.of(Tags.of("path", e.getKey()), e.getValue()))
                                .toList(),
                        true);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** The estimators as JSON (the internal plane's credential needed, as on every /internal route). */
    @GetMapping("/internal/estimators")
    public Map<String, Object> estimators() {
        var core = scheduler.core();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("policy", core.config().policy().cliName());
        m.put("admission", core.config().admission().cliName());
        m.put("block_tokens", core.config().blockTokens());
        var p = core.prefillModel();
        m.put("prefill", Map.of("c0", p.c0(), "c1", p.c1(), "c2", p.c2(), "samples", scheduler.fitSamples()));
        var d = core.decodeModel();
        m.put(
                "decode_step",
                Map.of(
                        "base",
                        d.base(),
                        "per_sequence",
                        d.perSequence(),
                        "per_context_token",
                        d.perContextToken(),
                        "samples",
                        scheduler.decodeStepSamples()));
        m.put("decode_seconds", core.decodeSecondsEstimate());
        m.put("ttft_overhead_seconds", core.ttftOverheadSeconds());
        m.put("path_bandwidth_bytes", scheduler.pathBandwidths());
        m.put("ttft_error", errors(scheduler.ttftError(0.5), scheduler.ttftError(0.99), scheduler.ttftSamples()));
        m.put("tbt_error", errors(scheduler.tbtError(0.5), scheduler.tbtError(0.99), -1));
        m.put("decode_capacity_tokens", scheduler.decodeCapacities());
        return m;
    }

    private static Map<String, Object> errors(double p50, double p99, long samples) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("p50", Double.isNaN(p50) ? null : p50);
        e.put("p99", Double.isNaN(p99) ? null : p99);
        if (samples >= 0) e.put("samples", samples);
        return e;
    }
}
