package dev.mooncakej.prefill;

import dev.mooncakej.kvcache.wire.ControlFrame;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.KvIndex;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import dev.mooncakej.web.ChannelOps;
import dev.mooncakej.web.Traced;
import dev.mooncakej.web.Tracing;
import java.io.IOException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/**
 * The prefill worker's internal API, called by the conductor (over HTTP, or its control channel:
 * {@link ChannelOps}).
 */
@RestController
public class PrefillController implements ChannelOps {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillController.class);
    private final PrefillService service;
    private final Tracing tracing;

    public PrefillController(PrefillService service, Tracing tracing) {
        this.service = service;
        this.tracing = tracing;
    }

    @PostMapping(value = "/internal/prefill", produces = MediaType.APPLICATION_JSON_VALUE)
    public Mono<String> prefill(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            @RequestHeader(value = Tracing.TRACEPARENT, required = false) String trace) {
        return prefillJson(body, rid, trace);
    }

    private Mono<String> prefillJson(String body, String rid, String trace) {
        PrefillTask task = InternalJson.decode(body, PrefillTask.class);
        return Mono.fromCallable(() -> {
                    // the span begins when the task is taken up (what it waited for before is the caller's)
                    Traced span = tracing.serve("mooncakej.prefill", trace).tag("mooncakej.request_id", rid);
                    PrefillResult r;
                    try {
                        r = service.prefill(task, span);
                    } catch (RuntimeException | IOException e) {
                        span.error(e).end();
                        throw e;
                    }
                    span.end();
                    LOG.info(
                            "[{}] prefilled {} tokens ({} cached) in {} ms; {} KV bytes to segment '{}'"
                                    + " over {}, last layer acknowledged {} ms after compute",
                            span.logId(rid),
                            task.tokens().length,
                            r.cachedTokens(),
                            Math.round(r.prefillSeconds() * 1000),
                            r.kvBytes(),
                            task.kv().segment(),
                            service.transportTo(task.kv().segment()),
                            Math.round(r.kvSeconds() * 1000));
                    return InternalJson.encode(r);
                })
                .subscribeOn(Schedulers.boundedElastic())
                .doOnError(e -> LOG.warn("[{}] prefill failed: {}", Tracing.logId(rid, trace), e.getMessage()));
    }

    // the control channel: the prefill call over one connection per conductor

    @Override
    public boolean streams(int op) {
        return false;
    }

    @Override
    public Mono<String> call(int op, String json, String rid, String trace) {
        return op == ControlFrame.PREFILL ? prefillJson(json, rid, trace) : Mono.error(ChannelOps.unknown(op));
    }

    @Override
    public Flux<String> stream(int op, String json, String rid, String trace) {
        return Flux.error(ChannelOps.unknown(op));
    }

    @Override
    public ChannelOps.Refusal refusal(Throwable e) {
        ResponseEntity<String> r = e instanceof IllegalArgumentException x
                ? badRequest(x)
                : e instanceof IllegalStateException x
                        ? unavailable(x)
                        : e instanceof IOException x
                                ? transfer(x)
                                : error(
                                        HttpStatus.INTERNAL_SERVER_ERROR,
                                        "internal_error",
                                        String.valueOf(e.getMessage()));
        return new ChannelOps.Refusal(r.getStatusCode().value(), InternalJson.decode(r.getBody(), WorkerError.class));
    }

    @GetMapping(value = "/internal/status", produces = MediaType.APPLICATION_JSON_VALUE)
    public String status() {
        return InternalJson.encode(service.status());
    }

    /** This worker's block-key contract and the costs it measured at start-up (read by the conductor at admission). */
    @GetMapping(value = "/internal/profile", produces = MediaType.APPLICATION_JSON_VALUE)
    public String profile() {
        return InternalJson.encode(service.profile());
    }

    /** Every block key in the prefix cache: a newly elected conductor rebuilds its global index from these. */
    @GetMapping(value = "/internal/kv-index", produces = MediaType.APPLICATION_JSON_VALUE)
    public String kvIndex() {
        return InternalJson.encode(new KvIndex(service.name(), service.cachedKeys()));
    }

    @ExceptionHandler(IllegalArgumentException.class)
    public ResponseEntity<String> badRequest(IllegalArgumentException e) {
        return error(HttpStatus.BAD_REQUEST, "bad_request", e.getMessage());
    }

    @ExceptionHandler(IllegalStateException.class)
    public ResponseEntity<String> unavailable(IllegalStateException e) {
        String code = e instanceof PrefillService.PastDeadline
                ? "kv_deadline"
                : e instanceof PrefillService.HandedBack ? "draining" : "unavailable";
        return error(HttpStatus.SERVICE_UNAVAILABLE, code, e.getMessage());
    }

    @ExceptionHandler(IOException.class)
    public ResponseEntity<String> transfer(IOException e) {
        return error(HttpStatus.BAD_GATEWAY, "kv_transfer_failed", e.getMessage());
    }

    private static ResponseEntity<String> error(HttpStatus status, String code, String message) {
        return ResponseEntity.status(status)
                .contentType(MediaType.APPLICATION_JSON)
                .body(InternalJson.encode(new WorkerError(code, message)));
    }
}
