package dev.mooncakej.decode;

import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveRequest;
import dev.mooncakej.kvcache.wire.WorkerMessages.ReserveResponse;
import dev.mooncakej.kvcache.wire.WorkerMessages.TokenEvent;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerStatus;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.DeleteMapping;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Flux;

/** The decode worker's internal API, called by the conductor. */
@RestController
public class DecodeController {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeController.class);
    private final DecodeService service;

    public DecodeController(DecodeService service) {
        this.service = service;
    }

    @PostMapping("/internal/reserve")
    public ResponseEntity<?> reserve(@RequestBody ReserveRequest req, @RequestHeader(value = "X-Request-Id", required = false) String rid) {
        ReserveResponse r = service.reserve(req.requestId(), req.promptTokens());
        LOG.info("[{}] reserve {} blocks for {} prompt tokens: {}", rid, r == null ? "no" : r.blocks(), req.promptTokens(), r == null ? "KV full" : "ok");
        if (r == null) {
            return ResponseEntity.status(HttpStatus.TOO_MANY_REQUESTS)
                    .body(new WorkerError("kv_full", "no free KV blocks for " + req.promptTokens() + " tokens"));
        }
        return ResponseEntity.ok(r);
    }

    @PostMapping(value = "/internal/decode", produces = "application/x-ndjson")
    public Flux<TokenEvent> decode(@RequestBody DecodeTask task, @RequestHeader(value = "X-Request-Id", required = false) String rid) {
        LOG.info("[{}] decoding request {} (up to {} tokens)", rid, task.requestId(), task.maxTokens());
        return service.decode(task).doOnCancel(() -> LOG.info("[{}] client of request {} went away", rid, task.requestId()));
    }

    @DeleteMapping("/internal/requests/{id}")
    public ResponseEntity<Void> cancel(@PathVariable("id") long id) {
        return service.cancel(id) ? ResponseEntity.noContent().build() : ResponseEntity.notFound().build();
    }

    @GetMapping("/internal/status")
    public WorkerStatus status() {
        return service.status();
    }

    @ExceptionHandler(IllegalArgumentException.class)
    public ResponseEntity<WorkerError> badRequest(IllegalArgumentException e) {
        return ResponseEntity.badRequest().body(new WorkerError("bad_request", e.getMessage()));
    }

    @ExceptionHandler(IllegalStateException.class)
    public ResponseEntity<WorkerError> conflict(IllegalStateException e) {
        return ResponseEntity.status(HttpStatus.CONFLICT).body(new WorkerError("conflict", e.getMessage()));
    }
}
