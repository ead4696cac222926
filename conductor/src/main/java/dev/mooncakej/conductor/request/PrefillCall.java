package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.workers.WorkerClient;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.scheduler.LiveScheduler;
import dev.mooncakej.scheduler.WorkerEndpoint;
import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Mono;

/**
 * The request path's third phase: the prefill on the chosen prefill worker, which computes (or
 * fetches) the prompt's KV, writes it into the decode worker's reservation and returns the first
 * token. Its answer is checked before use; a failure becomes a {@link RequestFailure} of its kind.
 */
@Component
public class PrefillCall {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillCall.class);

    private final ConductorProperties props;
    private final WorkerClient workers;
    private final ServedModel model;

    public PrefillCall(ConductorProperties props, WorkerClient workers, ServedModel model) {
        this.props = props;
        this.workers = workers;
        this.model = model;
    }

    /**
     * Prefills {@code g} (block keys {@code keys}, computed once per request) on {@code ch}'s prefill
     * worker into the reservation {@code res} answered: every block the scheduler counts on (fetched,
     * or believed held or in production there) goes with the task, so the worker waits for its own
     * in-flight blocks and asks the pool for the rest.
     */
    Mono<PrefillResult> call(
            GenerationRequest g, LiveScheduler.Choice ch, long reservation, long[] keys, ReserveResponse res) {
        WorkerEndpoint prefill = ch.prefill();
        int[] tokens = g.promptTokens();
        long deadline = deadlineMillis(ch);
        PrefillTask task = new PrefillTask(
                reservation,
                tokens,
                keys,
                g.promptLogprobs() ? 0 : ch.decision().prefixBlocks(), // every position is computed anyway
                res.kv(),
                g.sampling(),
                g.maxTokens(),
                g.n(),
                g.promptLogprobs(),
                deadline);
        prefill.started();
        // the worker ends the task at its deadline and answers why; one that answers nothing by then and a
        // moment after (stopped, cut off) is given up on here
        return workers.prefill(
                        prefill.url(),
                        task,
                        g.requestId(),
                        g.trace().traceparent(),
                        Duration.ofMillis(deadline + DEADLINE_GRACE_MILLIS))
                .map(pr -> checked(
                        g,
                        pr.validate(
                                reservation, tokens.length, model.tokenizer().vocabSize())))
                .doFinally(s -> prefill.ended());
    }

    /** The result against what was asked: a first token per choice, the prompt's log-probabilities if asked. */
    private static PrefillResult checked(GenerationRequest g, PrefillResult pr) {
        if (pr.firstTokens().length != g.n())
            throw new IllegalArgumentException(
                    "prefill result with " + pr.firstTokens().length + " first tokens: expected " + g.n() + " (n)");
        if (g.promptLogprobs() != (pr.promptLogprobs() != null))
            throw new IllegalArgumentException("prefill result " + (g.promptLogprobs() ? "without" : "with")
                    + " prompt log-probabilities, which were " + (g.promptLogprobs() ? "" : "not ") + "asked for");
        return pr;
    }

    /** How long past the task's deadline the conductor waits for the worker's own answer. */
    static final long DEADLINE_GRACE_MILLIS = 1000;

    /**
     * The task's deadline: {@code prefill-deadline-millis}, or three times the predicted TTFT (queue,
     * fetch and compute) when that is longer, within the worker timeout.
     */
    long deadlineMillis(LiveScheduler.Choice ch) {
        double predicted = ch.decision().ttft();
        long scaled = Double.isFinite(predicted) ? (long) (3000 * predicted) : Long.MAX_VALUE;
        return Math.min(props.workerTimeoutMillis(), Math.max(props.prefillDeadlineMillis(), scaled));
    }

    /**
     * Why a failed prefill is placed again (the metric's reason), and whether its worker is taken out
     * of scheduling for it ({@code sideline}: it answered nothing, so the next placement must not
     * land there; a worker that answered is well, whatever failed behind it).
     */
    record Replacement(String reason, boolean sideline) {}

    /**
     * Whether another placement may succeed where this prefill failed, and why: {@code deadline} (the
     * worker ended the task at its deadline, or answered nothing by then), {@code handed_back} (it
     * drains), {@code transfer_failed} (its KV writes or claim failed: the decode side broke),
     * {@code lost} (its connection broke, or its breaker refused the call); null for a failure that
     * placing again would repeat (a refused task, a bad answer).
     */
    static Replacement replacement(Throwable e) {
        if (e instanceof RequestFailure || e instanceof IllegalArgumentException) return null;
        if (e instanceof TimeoutException) return new Replacement("deadline", true);
        if (e instanceof CallNotPermittedException) return new Replacement("lost", false);
        if (e instanceof WorkerClient.WorkerException we)
            return switch (we.code()) {
                case "kv_deadline" -> new Replacement("deadline", false);
                case "draining" -> new Replacement("handed_back", false);
                case "unavailable", "kv_transfer_failed" -> new Replacement("transfer_failed", false);
                default -> null;
            };
        for (Throwable c = e; c != null; c = c.getCause())
            if (c instanceof IOException) return new Replacement("lost", true);
        return null;
    }

    /** What a failed prefill means for the client. */
    RequestFailure failure(Throwable e, GenerationRequest g) {
        if (e instanceof RequestFailure f) return f;
        LOG.warn(
                "[{}] prefill failed: {}",
                g.logId(),
                e instanceof TimeoutException
                        ? "no answer by the task's deadline (and a second more)"
                        : e.getMessage());
        if (e instanceof WorkerClient.WorkerException we && we.status() == 400)
            return new RequestFailure(RequestFailure.Kind.REJECTED_BY_WORKER, we.workerMessage(), null);
        if (e instanceof IllegalArgumentException) // a worker's answer that does not validate
        return new RequestFailure(
                    RequestFailure.Kind.BAD_WORKER_ANSWER,
                    "the prefill worker's answer was refused (request " + g.requestId()
                            + "; the conductor's log says why)",
                    null);
        return new RequestFailure(
                RequestFailure.Kind.PREFILL_FAILED,
                "the prefill failed (request " + g.requestId() + "; the conductor's log says why); retry",
                props.retryAfterSeconds());
    }
}
