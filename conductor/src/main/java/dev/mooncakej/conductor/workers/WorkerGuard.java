package dev.mooncakej.conductor.workers;

import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerRegistry;
import io.github.resilience4j.reactor.circuitbreaker.operator.CircuitBreakerOperator;
import io.github.resilience4j.reactor.retry.RetryOperator;
import io.github.resilience4j.reactor.timelimiter.TimeLimiterOperator;
import io.github.resilience4j.retry.Retry;
import io.github.resilience4j.retry.RetryRegistry;
import io.github.resilience4j.timelimiter.TimeLimiter;
import io.github.resilience4j.timelimiter.TimeLimiterRegistry;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Resilience4j on every conductor-to-worker call (configured under {@code resilience4j.*}): a circuit
 * breaker per worker, a time limit on single-answer calls, and retries with exponential backoff only
 * where the call is idempotent (status, index and cancel calls; never a reservation or a prefill).
 * Breaker transitions are reported so an open breaker takes its worker out of scheduling until a
 * half-open trial succeeds.
 */
@Component
public class WorkerGuard {
    private static final Logger LOG = LoggerFactory.getLogger(WorkerGuard.class);

    private final CircuitBreakerRegistry breakers;
    private final Retry retry;
    private final TimeLimiter limiter;
    private final Map<String, CircuitBreaker> byUrl = new ConcurrentHashMap<>();
    private volatile BiConsumer<String, CircuitBreaker.State> onTransition = (u, s) -> {};

    public WorkerGuard(CircuitBreakerRegistry breakers, RetryRegistry retries, TimeLimiterRegistry limiters) {
        this.breakers = breakers;
        this.retry = retries.retry("worker-idempotent");
        this.limiter = limiters.timeLimiter("worker-call");
    }

    /** Who hears breaker transitions (the scheduler's membership). */
    public void onTransition(BiConsumer<String, CircuitBreaker.State> listener) {
        this.onTransition = listener;
    }

    public CircuitBreaker breaker(String url) {
        return byUrl.computeIfAbsent(url, u -> {
            CircuitBreaker cb = breakers.circuitBreaker("worker:" + u);
            cb.getEventPublisher().onStateTransition(e -> {
                LOG.warn("circuit breaker of worker {}: {}", u, e.getStateTransition());
                onTransition.accept(u, e.getStateTransition().getToState());
            });
            return cb;
        });
    }

    /** A non-idempotent call with one answer: breaker and time limit, no retry. */
    public <T> Mono<T> once(String url, Mono<T> call) {
        return call.transformDeferred(TimeLimiterOperator.of(limiter))
                .transformDeferred(CircuitBreakerOperator.of(breaker(url)));
    }

    /** An idempotent call: breaker, time limit, and retries with backoff. */
    public <T> Mono<T> idempotent(String url, Mono<T> call) {
        return call.transformDeferred(TimeLimiterOperator.of(limiter))
                .transformDeferred(CircuitBreakerOperator.of(breaker(url)))
                .transformDeferred(RetryOperator.of(retry));
    }

    /** A token stream: the breaker only (its own per-item timeout bounds it). */
    public <T> Flux<T> stream(String url, Flux<T> call) {
        return call.transformDeferred(CircuitBreakerOperator.of(breaker(url)));
    }
}
