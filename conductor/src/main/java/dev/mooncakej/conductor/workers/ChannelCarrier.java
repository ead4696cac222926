package dev.mooncakej.conductor.workers;

import java.util.concurrent.atomic.AtomicBoolean;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * Calls over each worker's control channel ({@link WorkerChannels}); a worker marked HTTP-only, or
 * one whose channel cannot be opened, is called over {@code fallback} instead.
 */
final class ChannelCarrier implements WorkerCarrier {
    private final WorkerChannels channels;
    private final WorkerCarrier fallback;

    ChannelCarrier(WorkerChannels channels, WorkerCarrier fallback) {
        this.channels = channels;
        this.fallback = fallback;
    }

    @Override
    public Mono<String> call(String url, WorkerOp op, String requestId, String trace, String json) {
        if (channels.httpOnly(url)) return fallback.call(url, op, requestId, trace, json);
        return channels.call(url, op.frame, requestId, trace, json)
                .onErrorResume(WorkerChannels.NoChannel.class, e -> fallback.call(url, op, requestId, trace, json));
    }

    @Override
    public Flux<String> stream(
            String url, WorkerOp op, String requestId, String trace, String json, Runnable accepted) {
        if (channels.httpOnly(url)) return fallback.stream(url, op, requestId, trace, json, accepted);
        AtomicBoolean taken = new AtomicBoolean(), sent = new AtomicBoolean();
        return channels.stream(url, op.frame, requestId, trace, json, () -> sent.set(true))
                .doOnNext(line -> {
                    if (taken.compareAndSet(false, true)) accepted.run(); // its first event: it took the task
                })
                // cancelled after the call went out and before its first event: the worker reads the call
                // before the cancel, takes the task (it refuses only a task that breaks the protocol) and
                // ends it as cancelled, so it counts as taken; not counting it left the conductor one short
                .doOnCancel(() -> {
                    if (sent.get() && taken.compareAndSet(false, true)) accepted.run();
                })
                .onErrorResume(
                        WorkerChannels.NoChannel.class,
                        e -> fallback.stream(url, op, requestId, trace, json, accepted));
    }
}
