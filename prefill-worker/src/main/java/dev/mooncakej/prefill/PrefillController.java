package dev.mooncakej.prefill;

import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerStatus;
import java.io.IOException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;

/** The prefill worker's internal API, called by the conductor. */
@RestController
public class PrefillController {
    private static final Logger LOG = LoggerFactory.getLogger(PrefillController.class);
    private final PrefillService service;

    public PrefillController(PrefillService service) {
        this.service = service;
    }

    @PostMapping("/internal/prefill")
    public Mono<PrefillResult> prefill(@RequestBody PrefillTask task, @RequestHeader(value = "X-Request-Id", required = false) String rid) {
        return Mono.fromCallable(() -> {
            PrefillResult r = service.prefill(task);
            LOG.info("[{}] prefilled {} tokens ({} cached) in {} ms; {} KV bytes to segment '{}' over {}, last layer acknowledged {} ms after compute", rid,
                    task.tokens().length, r.cachedTokens(), Math.round(r.prefillSeconds() * 1000), r.kvBytes(), task.kv().segment(),
                    service.transportTo(task.kv().segment()), Math.round(r.kvSeconds() * 1000));
            return r;
        }).subscribeOn(Schedulers.boundedElastic()).doOnError(e -> LOG.warn("[{}] prefill failed: {}", rid, e.getMessage()));
    }

    @GetMapping("/internal/status")
    public WorkerStatus status() {
        return service.status();
    }

    /** Every block key in the prefix cache: a newly elected conductor rebuilds its global index from these. */
    @GetMapping("/internal/kv-index")
    public dev.mooncakej.kvcache.wire.WorkerMessages.KvIndex kvIndex() {
        return new dev.mooncakej.kvcache.wire.WorkerMessages.KvIndex(service.name(), service.cachedKeys());
    }

    @ExceptionHandler(IllegalArgumentException.class)
    public ResponseEntity<WorkerError> badRequest(IllegalArgumentException e) {
        return ResponseEntity.badRequest().body(new WorkerError("bad_request", e.getMessage()));
    }

    @ExceptionHandler(IllegalStateException.class)
    public ResponseEntity<WorkerError> unavailable(IllegalStateException e) {
        return ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE).body(new WorkerError("unavailable", e.getMessage()));
    }

    @ExceptionHandler(IOException.class)
    public ResponseEntity<WorkerError> transfer(IOException e) {
        return ResponseEntity.status(HttpStatus.BAD_GATEWAY).body(new WorkerError("kv_transfer_failed", e.getMessage()));
    }
}
