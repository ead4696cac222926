package dev.mooncakej.web;

import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;

/**
 * {@code POST /internal/drain} (the internal plane: the cluster credential is required, as on every
 * {@code /internal/} route): the worker leaves scheduling at once, finishes or hands back what it
 * holds within its drain budget, and exits, exactly as on SIGTERM (the context is closed, which runs
 * the same stop). Answers 202 with the budget; asking again while it drains answers the same.
 */
@RestController
public class DrainController {
    private static final Logger LOG = LoggerFactory.getLogger(DrainController.class);

    private final Drainable worker;
    private final ConfigurableApplicationContext context;
    private final AtomicBoolean started = new AtomicBoolean();

    public DrainController(Drainable worker, ConfigurableApplicationContext context) {
        this.worker = worker;
        this.context = context;
    }

    @PostMapping(value = "/internal/drain", produces = MediaType.APPLICATION_JSON_VALUE)
    public ResponseEntity<String> drain() {
        long budget = worker.drainBudget().toMillis();
        if (started.compareAndSet(false, true)) {
            LOG.info("drain asked over the internal plane: leaving scheduling, then exiting within {} ms", budget);
            // after this answer is written: the context's close stops the web server last
            Thread.ofPlatform().name("drain").start(() -> System.exit(SpringApplication.exit(context)));
        }
        return ResponseEntity.status(HttpStatus.ACCEPTED).body("{\"draining\":true,\"budgetMillis\":" + budget + "}");
    }
}
