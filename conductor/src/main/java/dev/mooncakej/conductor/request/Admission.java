package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.leadership.Leadership;
import dev.mooncakej.conductor.membership.WorkerMembership;
import dev.mooncakej.conductor.metrics.ConductorMetrics;
import dev.mooncakej.scheduler.Decision;
import dev.mooncakej.scheduler.LiveScheduler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;

/**
 * The request path's first phase: whether this conductor takes the request at all (it leads, workers
 * are admitted) and the scheduler's decision on it (Algorithm 1 with the admission mode: a prefill
 * and a decode instance, or a refusal). Refusals are {@link RequestFailure}s, counted by reason and
 * logged with the prediction they rest on. The other admission points (body size, keys and their
 * limits, the tokenizer queue, KV reservation) are named in {@code scheduler/admission}'s package doc.
 */
@Component
public class Admission {
    private static final Logger LOG = LoggerFactory.getLogger(Admission.class);

    private final ConductorProperties props;
    private final LiveScheduler scheduler;
    private final WorkerMembership membership;
    private final Leadership leadership;
    private final ConductorMetrics metrics;

    public Admission(
            ConductorProperties props,
            LiveScheduler scheduler,
            WorkerMembership membership,
            Leadership leadership,
            ConductorMetrics metrics) {
        this.props = props;
        this.scheduler = scheduler;
        this.membership = membership;
        this.leadership = leadership;
        this.metrics = metrics;
    }

    /** The scheduler's accepted choice for {@code g} (its prompt's block keys {@code keys}), or a refusal. */
    LiveScheduler.Choice admit(GenerationRequest g, long[] keys) {
        if (!leadership.leader()) {
            metrics.rejected("standby").increment();
            throw new RequestFailure(
                    RequestFailure.Kind.STANDBY,
                    "this conductor is a standby (" + leadership.standbyReason() + "); send requests to the leader",
                    props.retryAfterSeconds());
        }
        if (!scheduler.ready()) {
            metrics.rejected("no_workers").increment();
            throw new RequestFailure(RequestFailure.Kind.NO_WORKERS, noWorkers(g), props.retryAfterSeconds());
        }
        int[] tokens = g.promptTokens();
        metrics.promptTokens.record(tokens.length);
        LiveScheduler.Choice choice;
        try {
            choice = scheduler.choose(
                    keys,
                    tokens.length,
                    tokens.length + g.maxTokens(),
                    g.requestId().startsWith(WarmUp.PROBE));
        } catch (IllegalStateException e) { // membership changed to empty between the check and the choice
            metrics.rejected("no_workers").increment();
            LOG.warn("[{}] no workers to choose from: {}", g.logId(), e.getMessage());
            throw new RequestFailure(
                    RequestFailure.Kind.NO_WORKERS,
                    "no prefill or decode worker is available (request " + g.requestId() + "); retry",
                    props.retryAfterSeconds());
        }
        if (!choice.decision().accepted()) throw refused(g, choice.decision());
        return choice;
    }

    /** Why no worker can take a request, and what to do about it. */
    private String noWorkers(GenerationRequest g) {
        var open = membership.openBreakers();
        if (!open.isEmpty())
            LOG.warn("[{}] no worker available; out of scheduling after repeated failures: {}", g.logId(), open);
        var pending = membership.pendingWorkers();
        if (!pending.isEmpty() && open.isEmpty())
            return pending.size() + " listed worker(s) have not answered the conductor yet (admission reads each"
                    + " worker's profile first; the conductor's log names them); retry";
        if (open.isEmpty())
            return "no prefill or decode worker is configured or registered; start some (./mooncakej up) and retry";
        return "no prefill or decode worker is available: " + open.size()
                + " failed repeatedly and are out of scheduling until their circuit breakers let"
                + " trial calls through (request " + g.requestId() + "; the conductor's log names them); retry";
    }

    /** The scheduler's refusal, counted by reason and logged with the prediction it rests on. */
    private RequestFailure refused(GenerationRequest g, Decision d) {
        metrics.rejected(Decision.TTFT_SLO.equals(d.rejectReason()) ? "ttft_slo" : "decode_load")
                .increment();
        LOG.info( // what the refusal rested on, for whoever reads why a request got 429
                "[{}] refused: {} ({} prompt tokens, predicted TTFT {} ms: queue {}, prefill {}, fetch {}; "
                        + "predicted TBT {} ms)",
                g.logId(),
                d.rejectReason(),
                g.promptTokens().length,
                Math.round(d.ttft() * 1000),
                Math.round(d.queueSeconds() * 1000),
                Math.round(d.prefillSeconds() * 1000),
                Math.round(d.transferSeconds() * 1000),
                Math.round(d.tbt() * 1000));
        return new RequestFailure(
                RequestFailure.Kind.OVERLOADED,
                "the cluster is overloaded (" + d.rejectReason() + "); retry after " + props.retryAfterSeconds() + " s",
                props.retryAfterSeconds());
    }
}
