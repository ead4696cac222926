package dev.mooncakej.decode;

import dev.mooncakej.kvcache.wire.ControlFrame;
import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.Release;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import dev.mooncakej.web.ChannelOps;
import dev.mooncakej.web.Traced;
import dev.mooncakej.web.Tracing;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.io.buffer.DataBufferFactory;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.bind.annotation.DeleteMapping;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The decode worker's internal API, called by the conductor; bodies in and out through {@link
 * InternalJson}. The same operations are served on the control channel ({@link ChannelOps}).
 */
@RestController
public class DecodeController implements ChannelOps {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeController.class);
    private final DecodeService service;
    private final DecodeAgent agent;
    private final Tracing tracing;

    public DecodeController(DecodeService service, DecodeAgent agent, Tracing tracing) {
        this.service = service;
        this.agent = agent;
        this.tracing = tracing;
    }

    @PostMapping(value = "/internal/reserve", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> reserve(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            @RequestHeader(value = Tracing.TRACEPARENT, required = false) String trace) {
        try {
            return ResponseEntity.ok(reserveJson(body, Tracing.logId(rid, trace)));
        } catch (ChannelOps.Refused e) {
            return ResponseEntity.status(HttpStatus.TOO_MANY_REQUESTS)
                    .body(InternalJson.encode(e.refusal().error()));
        }
    }

    /** A reservation as JSON; no room is a 429 refusal. */
    private String reserveJson(String body, String rid) {
        ReserveRequest req = InternalJson.decode(body, ReserveRequest.class);
        ReserveResponse r = service.reserve(req.reservationId(), req.promptTokens(), req.maxTokens(), req.choices());
        LOG.info(
                "[{}] reservation {}: {} blocks for {} prompt + {} generated tokens{}: {}",
                rid,
                req.reservationId(),
                r == null ? "no" : r.blocks(),
                req.promptTokens(),
                req.maxTokens(),
                req.choices() > 1 ? " x " + req.choices() + " choices" : "",
                r == null ? "KV full" : "ok");
        if (r == null)
            throw new ChannelOps.Refused(
                    429,
                    "kv_full",
                    "no free KV blocks for " + req.promptTokens() + " + " + req.maxTokens() + " tokens");
        return InternalJson.encode(r);
    }

    /**
     * The token stream, one JSON line per event, each flushed as it is made (a plain flux of strings
     * would be buffered: only an encoder that declares NDJSON a streaming type flushes per element).
     */
    @PostMapping(value = "/internal/decode", produces = MediaType.APPLICATION_NDJSON_VALUE)
    public Mono<Void> decode(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            @RequestHeader(value = Tracing.TRACEPARENT, required = false) String trace,
            ServerHttpResponse response) {
        Flux<String> lines = events(body, rid, trace);
        response.getHeaders().setContentType(MediaType.APPLICATION_NDJSON);
        DataBufferFactory buffers = response.bufferFactory();
        return response.writeAndFlushWith(
                lines.map(line -> Mono.just(buffers.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)))));
    }

    /**
     * The token events of a decode task, each as JSON. Its span has two parts: the wait until its
     * first token (the KV located and, for a moved stream, taken from the pool; the sequence joining
     * the batch) and the decode (tokens and steps).
     */
    private Flux<String> events(String body, String rid, String trace) {
        DecodeTask task = InternalJson.decode(body, DecodeTask.class);
        Traced span = tracing.serve("mooncakej.decode", trace)
                .tag("mooncakej.request_id", rid)
                .tag("mooncakej.reservation", task.reservationId())
                .tag("mooncakej.tokens.prompt", task.promptTokens())
                .tag("mooncakej.tokens.max", task.maxTokens())
                .tag("mooncakej.decode.taken_from_pool", task.history() != null);
        LOG.info(
                "[{}] decoding reservation {} (up to {} tokens)",
                span.logId(rid),
                task.reservationId(),
                task.maxTokens());
        long received = System.nanoTime();
        long[] first = {0};
        AtomicLong tokens = new AtomicLong();
        return service.decode(task)
                .doOnNext(e -> {
                    if (tokens.getAndIncrement() == 0) first[0] = System.nanoTime();
                })
                .map(InternalJson::encode)
                .doOnCancel(() ->
                        LOG.info("[{}] client of reservation {} went away", span.logId(rid), task.reservationId()))
                .doFinally(signal -> {
                    long end = System.nanoTime(), n = tokens.get();
                    int choices = 1 + (task.moreFirstTokens() == null ? 0 : task.moreFirstTokens().length);
                    span.part("decode.kv_wait", received, n > 0 ? first[0] : end);
                    if (n > 0)
                        span.part(
                                "decode.steps",
                                first[0],
                                end,
                                "mooncakej.tokens.generated",
                                n,
                                "mooncakej.decode.steps",
                                (n + choices - 1) / choices);
                    span.tag("mooncakej.tokens.generated", n)
                            .tag("mooncakej.decode.outcome", signal.toString().toLowerCase(Locale.ROOT));
                    span.end();
                });
    }

    // the control channel: the same operations as the routes above, over one connection per conductor

    @Override
    public boolean streams(int op) {
        return op == ControlFrame.DECODE;
    }

    @Override
    public Mono<String> call(int op, String json, String rid, String trace) {
        return switch (op) {
            case ControlFrame.RESERVE -> Mono.fromCallable(() -> reserveJson(json, Tracing.logId(rid, trace)));
            case ControlFrame.RELEASE ->
                Mono.fromCallable(() -> {
                    long id = InternalJson.decode(json, Release.class).reservationId();
                    if (!service.cancel(id)) throw new ChannelOps.Refused(404, "not_found", "no reservation " + id);
                    return "{}";
                });
            default -> Mono.error(ChannelOps.unknown(op));
        };
    }

    @Override
    public Flux<String> stream(int op, String json, String rid, String trace) {
        return op == ControlFrame.DECODE ? events(json, rid, trace) : Flux.error(ChannelOps.unknown(op));
    }

    @Override
    public ChannelOps.Refusal refusal(Throwable e) {
        if (e instanceof IllegalArgumentException)
            return new ChannelOps.Refusal(400, new WorkerError("bad_request", e.getMessage()));
        if (e instanceof DecodeService.NotTaken) // the conductor places the stream through a prefill worker
        return new ChannelOps.Refusal(409, new WorkerError("not_taken", e.getMessage()));
        if (e instanceof IllegalStateException)
            return new ChannelOps.Refusal(409, new WorkerError("conflict", e.getMessage()));
        LOG.warn("control channel call failed", e);
        return new ChannelOps.Refusal(500, new WorkerError("internal_error", String.valueOf(e.getMessage())));
    }

    @DeleteMapping("/internal/reservations/{id}")
    public ResponseEntity<Void> cancel(@PathVariable("id") long id) {
        return service.cancel(id)
                ? ResponseEntity.noContent().build()
                : ResponseEntity.notFound().build();
    }

    /** This worker's block-key contract and the costs it measured at start-up (read by the conductor at admission). */
    @GetMapping(value = "/internal/profile", produces = MediaType.APPLICATION_JSON_VALUE)
    public String profile() {
        return InternalJson.encode(service.profile());
    }

    @GetMapping(value = "/internal/status", produces = MediaType.APPLICATION_JSON_VALUE)
    public String status() {
        return InternalJson.encode(service.status(agent.activeCount()));
    }

    @ExceptionHandler(IllegalArgumentException.class)
    public ResponseEntity<String> badRequest(IllegalArgumentException e) {
        return ResponseEntity.badRequest()
                .contentType(MediaType.APPLICATION_JSON)
                .body(InternalJson.encode(new WorkerError("bad_request", e.getMessage())));
    }

    @ExceptionHandler(IllegalStateException.class)
    public ResponseEntity<String> conflict(IllegalStateException e) {
        return ResponseEntity.status(HttpStatus.CONFLICT)
                .contentType(MediaType.APPLICATION_JSON)
                .body(InternalJson.encode(new WorkerError("conflict", e.getMessage())));
    }
}
