package dev.mooncakej.decode;

import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import java.nio.charset.StandardCharsets;
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

/** The decode worker's internal API, called by the conductor; bodies in and out through {@link InternalJson}. */
@RestController
public class DecodeController {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeController.class);
    private final DecodeService service;
    private final DecodeAgent agent;

    public DecodeController(DecodeService service, DecodeAgent agent) {
        this.service = service;
        this.agent = agent;
    }

    @PostMapping(value = "/internal/reserve", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> reserve(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid) {
        ReserveRequest req = InternalJson.decode(body, ReserveRequest.class);
        ReserveResponse r = service.reserve(req.reservationId(), req.promptTokens(), req.maxTokens());
        LOG.info(
                "[{}] reservation {}: {} blocks for {} prompt + {} generated tokens: {}",
                rid,
                req.reservationId(),
                r == null ? "no" : r.blocks(),
                req.promptTokens(),
                req.maxTokens(),
                r == null ? "KV full" : "ok");
        if (r == null) {
            return ResponseEntity.status(HttpStatus.TOO_MANY_REQUESTS)
                    .body(InternalJson.encode(new WorkerError(
                            "kv_full",
                            "no free KV blocks for " + req.promptTokens() + " + " + req.maxTokens() + " tokens")));
        }
        return ResponseEntity.ok(InternalJson.encode(r));
    }

    /**
     * The token stream, one JSON line per event, each flushed as it is made (a plain flux of strings
     * would be buffered: only an encoder that declares NDJSON a streaming type flushes per element).
     */
    @PostMapping(value = "/internal/decode", produces = MediaType.APPLICATION_NDJSON_VALUE)
    public Mono<Void> decode(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            ServerHttpResponse response) {
        DecodeTask task = InternalJson.decode(body, DecodeTask.class);
        LOG.info("[{}] decoding reservation {} (up to {} tokens)", rid, task.reservationId(), task.maxTokens());
        Flux<TokenEvent> events = service.decode(task);
        response.getHeaders().setContentType(MediaType.APPLICATION_NDJSON);
        DataBufferFactory buffers = response.bufferFactory();
        return response.writeAndFlushWith(events.map(ev ->
                        Mono.just(buffers.wrap((InternalJson.encode(ev) + "\n").getBytes(StandardCharsets.UTF_8))))
                .doOnCancel(() -> LOG.info("[{}] client of reservation {} went away", rid, task.reservationId())));
    }

    @DeleteMapping("/internal/reservations/{id}")
    public ResponseEntity<Void> cancel(@PathVariable("id") long id) {
        return service.cancel(id)
                ? ResponseEntity.noContent().build()
                : ResponseEntity.notFound().build();
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
