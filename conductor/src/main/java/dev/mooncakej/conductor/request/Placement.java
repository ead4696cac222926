package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.metrics.ConductorMetrics;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.scheduler.WorkerEndpoint;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;

/**
 * The request path's second phase, after the scheduler placed the request: KV for the prompt and
 * everything it may generate reserved on a decode worker, the scheduler's choice first and its
 * fallbacks in order; each answer checked against what was asked.
 */
@Component
public class Placement {
    private static final Logger LOG = LoggerFactory.getLogger(Placement.class);

    private final ConductorProperties props;
    private final WorkerClient workers;
    private final ConductorMetrics metrics;

    public Placement(ConductorProperties props, WorkerClient workers, ConductorMetrics metrics) {
        this.props = props;
        this.workers = workers;
        this.metrics = metrics;
    }

    /** A decode worker's reservation: where, and its answer (the KV target the prefill writes into). */
    record Reserved(WorkerEndpoint endpoint, ReserveResponse response) {}

    /**
     * Tries decode workers in order until one has room; KV_FULL when none has, WORKER_UNAVAILABLE when
     * none answers. {@code asked} holds the worker being asked (a cancelled request releases there).
     */
    Mono<Reserved> reserve(
            long reservation,
            GenerationRequest g,
            List<WorkerEndpoint> candidates,
            AtomicReference<WorkerEndpoint> asked) {
        return reserve(reservation, g, candidates, 0, asked);
    }

    private Mono<Reserved> reserve(
            long reservation,
            GenerationRequest g,
            List<WorkerEndpoint> candidates,
            int i,
            AtomicReference<WorkerEndpoint> asked) {
        if (i >= candidates.size()) {
            metrics.rejected("kv_full").increment();
            return Mono.error(new RequestFailure(
                    RequestFailure.Kind.KV_FULL,
                    "every decode worker's KV cache is full; retry after " + props.retryAfterSeconds() + " s",
                    props.retryAfterSeconds()));
        }
        WorkerEndpoint w = candidates.get(i);
        asked.set(w);
        int prompt = g.promptTokens().length;
        return workers.reserve(
                        w.url(),
                        new ReserveRequest(reservation, prompt, g.maxTokens(), g.n()),
                        g.requestId(),
                        g.trace().traceparent())
                .map(r -> new Reserved(w, checked(r, reservation, prompt, w.url())))
                .switchIfEmpty(Mono.defer(() -> reserve(reservation, g, candidates, i + 1, asked)))
                .onErrorResume(e -> !(e instanceof RequestFailure), e -> {
                    LOG.warn("[{}] decode worker {} failed: {}", g.logId(), w.url(), e.getMessage());
                    if (e instanceof IllegalArgumentException)
                        workers.cancel(w.url(), reservation).subscribe();
                    return i + 1 < candidates.size()
                            ? reserve(reservation, g, candidates, i + 1, asked)
                            : Mono.error(new RequestFailure(
                                    RequestFailure.Kind.WORKER_UNAVAILABLE,
                                    "no decode worker is reachable (request " + g.requestId()
                                            + "; the conductor's log says why); retry",
                                    props.retryAfterSeconds()));
                });
    }

    /** A decode worker's reservation answer, checked against what was asked. */
    private ReserveResponse checked(ReserveResponse r, long reservation, int promptTokens, String url) {
        int bt = props.blockTokens();
        int blocks = (promptTokens + bt - 1) / bt;
        String bad = null;
        if (r.reservationId() != reservation) bad = "reservation " + r.reservationId() + ", expected " + reservation;
        else if (r.blockTokens() != bt) bad = r.blockTokens() + " tokens per block, the conductor uses " + bt;
        else if (r.kv() == null || r.kv().segment() == null || r.kv().blockOffsets() == null) bad = "no KV target";
        else if (r.kv().blockOffsets().length != blocks)
            bad = r.kv().blockOffsets().length + " block offsets for " + promptTokens + " tokens, expected " + blocks;
        else if (r.kv().layerBytes() <= 0) bad = "layer bytes " + r.kv().layerBytes();
        if (bad != null)
            throw new IllegalArgumentException("decode worker " + url + " answered the reservation with " + bad);
        return r;
    }
}
