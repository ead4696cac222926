package dev.mooncakej.conductor.workers;

import java.util.function.Predicate;

/**
 * What counts against a worker's circuit breaker: connection failures, timeouts and 5xx answers. A
 * 4xx answer is about the request, not the worker's health, and does not count.
 */
public final class WorkerFailure implements Predicate<Throwable> {
    @Override
    public boolean test(Throwable t) {
        return !(t instanceof WorkerClient.WorkerException w) || w.status() >= 500;
    }
}
