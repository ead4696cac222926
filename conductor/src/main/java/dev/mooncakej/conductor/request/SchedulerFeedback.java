package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.membership.RoutingHealthIndicator;
import dev.mooncakej.conductor.metrics.ConductorMetrics;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.scheduler.Decision;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.WorkerEndpoint;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;

/**
 * The request path's last phase, run beside the others: what each request teaches the scheduler (the
 * prefill's compute and queue time, the TTFT overhead, the KV writes' paths, the fetch price, the
 * decode's length), what routing health compares (the prefix hit predicted against the one used),
 * the metrics, and the one log line per request that says where its time went.
 */
@Component
public class SchedulerFeedback {
    private static final Logger LOG = LoggerFactory.getLogger(SchedulerFeedback.class);

    private final ConductorProperties props;
    private final LiveScheduler scheduler;
    private final ConductorMetrics metrics;
    private final RoutingHealthIndicator routing;

    public SchedulerFeedback(
            ConductorProperties props,
            LiveScheduler scheduler,
            ConductorMetrics metrics,
            RoutingHealthIndicator routing) {
        this.props = props;
        this.scheduler = scheduler;
        this.metrics = metrics;
        this.routing = routing;
    }

    /** When a request passed each phase ({@link System#nanoTime()}). */
    record Marks(long start, long scheduled, long reserved, long prefilled) {}

    /** The reservation landed on {@code decode}: the choice as it now stands (decode load charged there). */
    LiveScheduler.Choice reservedOn(LiveScheduler.Choice c, WorkerEndpoint decode) {
        return scheduler.reservedOn(c, decode);
    }

    /**
     * A prefill that did not complete leaves the estimates: {@code called}, it reached its worker (and
     * ended now, so the requests queued behind it start now); else it never joined that queue.
     */
    /** A moved stream its decode worker took from the pool itself (no prefill): returns the decode start time. */
    double takenOnDecode(LiveScheduler.Choice c, int promptTokens) {
        return scheduler.takenOnDecode(c, promptTokens);
    }

    void prefillFailed(LiveScheduler.Choice c, int promptTokens, boolean called) {
        if (called) scheduler.prefillEnded(c, promptTokens, 0, 0, false);
        else scheduler.prefillNotStarted(c);
    }

    /** A prefill answered {@code pr}: what it teaches, counted and logged. Returns the decode start time. */
    double prefilled(GenerationRequest g, LiveScheduler.Choice ch, WorkerEndpoint decode, PrefillResult pr, Marks m) {
        WorkerEndpoint prefill = ch.prefill();
        int n = g.promptTokens().length;
        var times = pr.times(); // the worker's compute time apart from its queue wait
        double compute = times == null ? pr.prefillSeconds() : times.computeSeconds();
        double decodeStart = times == null
                ? scheduler.prefillEnded(ch, n, pr.cachedTokens(), pr.prefillSeconds(), true)
                : scheduler.prefillEnded(ch, n, pr.cachedTokens(), compute, times.queueSeconds(), true);
        if (g.requestId().startsWith(WarmUp.PROBE_ALONE)) scheduler.calibrated(n, pr.cachedTokens(), compute);
        scheduler.ttftOverhead( // a probe's only until a request measures it
                decodeStart - ch.scheduledAt(), pr.prefillSeconds() + pr.kvSeconds(), ch.probe());
        if (times != null)
            scheduler.kvWrites(
                    prefill.url(),
                    decode.url(),
                    times.kvWrites(),
                    pr.kvBytes(),
                    times.kvWriteSeconds(),
                    times.kvWriteConcurrency());
        metrics.cachedTokens.record(pr.cachedTokens());
        metrics.vllm.promptTokens.increment(n);
        metrics.vllm.prefixQueries.increment(n);
        metrics.vllm.prefixHits.increment(pr.cachedTokens());
        Decision d = ch.decision();
        if (!g.promptLogprobs()) // (a prompt's log-probabilities are computed over all of it, whatever is cached)
        routing.observe( // what was routed for against what the worker reused
                    prefill.url(), Math.min((long) d.prefixBlocks() * props.blockTokens(), n - 1L), pr.cachedTokens());
        scheduler.fetched(ch, pr.fetchedTokens(), pr.fetchSeconds()); // the fetch price follows
        metrics.prefixHit(pr.cachedTokens() - pr.fetchedTokens(), pr.fetchedTokens());
        metrics.kvBytes.increment(pr.kvBytes());
        metrics.kvTime.record(Duration.ofNanos((long) (pr.kvSeconds() * 1e9)));
        log(g, ch, decode, pr, m, decodeStart);
        return decodeStart;
    }

    private void log(
            GenerationRequest g,
            LiveScheduler.Choice ch,
            WorkerEndpoint decode,
            PrefillResult pr,
            Marks m,
            double decodeStart) {
        Decision d = ch.decision();
        LOG.info(
                "[{}] prefill on {} ({}): {} prompt tokens, {} cached ({} fetched{}), {} ms "
                        + "compute, {} KV bytes in {} ms to {}; TTFT {} ms (predicted {} ms:"
                        + " queue {}, prefill {}, fetch {}; here: scheduled in {} us, reserved"
                        + " in {} us, prefill call {} us)",
                g.logId(),
                ch.prefill().url(),
                d.fetchFrom() >= 0 ? "prefix from the pool" : "local prefix",
                g.promptTokens().length,
                pr.cachedTokens(),
                pr.fetchedTokens(),
                d.fetchFrom() >= 0 ? " from " + scheduler.prefillUrl(d.fetchFrom()) : "",
                Math.round(pr.prefillSeconds() * 1000),
                pr.kvBytes(),
                Math.round(pr.kvSeconds() * 1000),
                decode.url(),
                Math.round((decodeStart - ch.scheduledAt()) * 1000),
                Math.round(d.ttft() * 1000),
                Math.round(d.queueSeconds() * 1000),
                Math.round(d.prefillSeconds() * 1000),
                Math.round(d.transferSeconds() * 1000),
                (m.scheduled() - m.start()) / 1000,
                (m.reserved() - m.scheduled()) / 1000,
                (m.prefilled() - m.reserved()) / 1000);
    }

    /** The decode of {@code c} ended after {@code produced} tokens: the decode-length estimate learns. */
    void decodeEnded(LiveScheduler.Choice c, int promptTokens, double decodeStart, int produced) {
        scheduler.decodeEnded(c, promptTokens, decodeStart, produced);
    }
}
