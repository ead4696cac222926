package dev.mooncakej.conductor.workers;

import java.util.function.Predicate;
import org.springframework.web.reactive.function.client.WebClientResponseException;

/**
 * What counts against a worker's circuit breaker: connection failures, timeouts and 5xx answers. A
 * 4xx answer (a bad or already-finished request: e.g. cancelling a request that just ended) is about
 * the request, not the worker's health, and does not count.
 */
public final class WorkerFailure implements Predicate<Throwable> {
    @Override
    public boolean test(Throwable t) {
        if (t instanceof WorkerClient.WorkerException w) return w.status() >= 500;
        if (t instanceof WebClientResponseException r) return r.getStatusCode().is5xxServerError();
        return true;
    }
}
