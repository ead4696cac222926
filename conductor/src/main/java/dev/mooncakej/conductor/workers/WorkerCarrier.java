package dev.mooncakej.conductor.workers;

import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * How a call reaches a worker: {@link ChannelCarrier} (its control channel, the default) or
 * {@link HttpCarrier} (one HTTP exchange per call). Either way a worker's error answer is a
 * {@link WorkerClient.WorkerException} with its status; messages are the internal API's JSON.
 */
interface WorkerCarrier {
    /** One request, one answer; {@code trace}: the caller's span (a W3C traceparent; null: not traced). */
    Mono<String> call(String url, WorkerOp op, String requestId, String trace, String json);

    /** One request, a stream of answers; {@code accepted} runs once the worker has taken it. */
    Flux<String> stream(String url, WorkerOp op, String requestId, String trace, String json, Runnable accepted);
}
