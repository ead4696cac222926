package dev.mooncakej.conductor.metrics;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.web.VllmMetrics;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.springframework.context.annotation.Bean;
import org.springframework.stereotype.Component;

/**
 * The conductor's meters: latencies as the client sees them, tokens, KV moved, rejections by reason, requests by
 * outcome.
 */
@Component
public class ConductorMetrics {
    /**
     * Why requests are turned away: the scheduler's two reasons, every decode worker full, no worker, a standby
     * conductor.
     */
    public static final List<String> REJECT_REASONS =
            List.of("ttft_slo", "decode_load", "kv_full", "no_workers", "standby");

    public final Timer ttft;
    public final Timer tbt;
    public final Timer e2e;
    public final DistributionSummary promptTokens;
    public final DistributionSummary cachedTokens;
    public final Counter kvBytes;
    public final Timer kvTime;
    /** Why a stream moves to another decode worker: its own was lost (died, broke, stalled) or drained. */
    public static final List<String> MIGRATION_REASONS = List.of("lost", "drained");

    /**
     * Why a request's prefill was placed again: past its deadline, its worker lost, handed back by a
     * draining worker, or its KV transfer failed on the decode side.
     */
    public static final List<String> REPLACE_REASONS = List.of("deadline", "lost", "handed_back", "transfer_failed");

    /** The serving metrics under vLLM's names (on {@code /metrics}): the client's view, as vLLM's API server has it. */
    public final VllmMetrics vllm;

    /** Requests admitted and waiting for their first token (in a prefill queue or prefilling). */
    public final AtomicInteger waiting = new AtomicInteger();

    /** Requests past their first token, decoding. */
    public final AtomicInteger running = new AtomicInteger();

    private final MeterRegistry meters;
    private final Map<String, Counter> rejections = new ConcurrentHashMap<>();
    private final Map<String, Counter> outcomes = new ConcurrentHashMap<>();
    private final Map<String, Counter> hits = new ConcurrentHashMap<>();
    private final Map<String, Counter> counters = new ConcurrentHashMap<>();

    public ConductorMetrics(
            MeterRegistry meters, ConductorProperties props, ServedModel model, LiveScheduler scheduler) {
        this.meters = meters;
        this.vllm = new VllmMetrics(model.name(), running::get, waiting::get, scheduler::decodeKvUsage);
        this.ttft = Timer.builder("mooncakej.ttft")
                .description("time to first token, as the client sees it")
                .publishPercentileHistogram()
                .register(meters);
        this.tbt = Timer.builder("mooncakej.tbt")
                .description("time between tokens, as the client sees it")
                .publishPercentileHistogram()
                .register(meters);
        this.e2e = Timer.builder("mooncakej.e2e")
                .description("end-to-end request latency")
                .publishPercentileHistogram()
                .register(meters);
        this.promptTokens = DistributionSummary.builder("mooncakej.prompt.tokens")
                .description("prompt tokens of each admitted request")
                .register(meters);
        this.cachedTokens = DistributionSummary.builder("mooncakej.prompt.cached.tokens")
                .description("prompt tokens of each request whose KV was reused")
                .register(meters);
        this.kvBytes = Counter.builder("mooncakej.kv.transferred.bytes")
                .description("KV bytes moved from prefill to decode workers")
                .register(meters);
        this.kvTime = Timer.builder("mooncakej.kv.transferred.time")
                .description("KV transfer time per request (prefill worker to decode worker)")
                .register(meters);
        for (String reason : MIGRATION_REASONS) migrations(reason);
        for (String reason : REPLACE_REASONS) replaced(reason);
        for (String reason : REJECT_REASONS) rejected(reason); // registered up front, so dashboards see zeros
        prefixHit(0, 0);
        Gauge.builder("mooncakej.slo.ttft.seconds", props, ConductorProperties::ttftSloSeconds)
                .description("TTFT SLO the scheduler admits against")
                .register(meters);
        Gauge.builder("mooncakej.slo.tbt.seconds", props, ConductorProperties::tbtSloSeconds)
                .description("TBT SLO the scheduler admits against")
                .register(meters);
    }

    /** The vLLM-named metrics, for {@code /metrics}. */
    @Bean
    VllmMetrics vllmMetrics() {
        return vllm;
    }

    /** Prompt tokens reused, by where their KV came from: the chosen worker's own cache, or the pool (fetched). */
    public void prefixHit(int localTokens, int poolTokens) {
        hits.computeIfAbsent("local", this::hitCounter).increment(localTokens);
        hits.computeIfAbsent("pool", this::hitCounter).increment(poolTokens);
    }

    private Counter hitCounter(String source) {
        return Counter.builder("mooncakej.prefix.hit.tokens")
                .description("prompt tokens reused, by where their KV came from")
                .tag("source", source)
                .register(meters);
    }

    public Counter rejected(String reason) {
        return rejections.computeIfAbsent(
                reason,
                r -> Counter.builder("mooncakej.rejections")
                        .description("requests turned away, by reason")
                        .tag("reason", r)
                        .register(meters));
    }

    /** Streams moved to another decode worker, by {@link #MIGRATION_REASONS reason}. */
    public Counter migrations(String reason) {
        return byReason(
                "mooncakej.stream.migrations",
                "streams moved to another decode worker: theirs was lost (died, broke, stalled) or drained",
                reason);
    }

    /**
     * Prefills placed again, by {@link #REPLACE_REASONS reason}: each aborted its KV transfer and
     * released what it held first.
     */
    public Counter replaced(String reason) {
        return byReason(
                "mooncakej.prefill.replaced",
                "prefills placed again after the first placement's KV transfer was aborted",
                reason);
    }

    /**
     * Moved streams by how their new placement got their KV: {@code pool} (the decode worker took the
     * history's blocks from the KV pool itself), {@code prefill} (a prefill worker fetched and wrote
     * it), {@code prefill_after_take} (the take fell short, a prefill worker did it).
     */
    public Counter placedAgain(String via) {
        return counters.computeIfAbsent(
                "mooncakej.stream.placements:" + via,
                k -> Counter.builder("mooncakej.stream.placements")
                        .description("moved streams placed again, by how their KV reached the new decode worker")
                        .tag("via", via)
                        .register(meters));
    }

    private Counter byReason(String name, String description, String reason) {
        return counters.computeIfAbsent(
                name + ":" + reason,
                k -> Counter.builder(name)
                        .description(description)
                        .tag("reason", reason)
                        .register(meters));
    }

    public void countOutcome(String outcome) {
        outcomes.computeIfAbsent(
                        outcome,
                        o -> Counter.builder("mooncakej.requests")
                                .tag("outcome", o)
                                .description("requests answered, by outcome")
                                .register(meters))
                .increment();
    }
}
