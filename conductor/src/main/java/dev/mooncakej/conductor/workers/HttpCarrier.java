package dev.mooncakej.conductor.workers;

import dev.mooncakej.kvcache.wire.InternalJson;
import dev.mooncakej.kvcache.wire.WorkerMessages.Release;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import dev.mooncakej.web.Tracing;
import org.springframework.http.MediaType;
import org.springframework.web.reactive.function.client.ClientResponse;
import org.springframework.web.reactive.function.client.WebClient;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/** Calls over one HTTP exchange each ({@code mooncakej.conductor.worker-channel=false}, or a worker without one). */
final class HttpCarrier implements WorkerCarrier {
    private final WebClient web;

    HttpCarrier(WebClient web) {
        this.web = web;
    }

    @Override
    public Mono<String> call(String url, WorkerOp op, String requestId, String trace, String json) {
        if (op == WorkerOp.RELEASE)
            return web.delete()
                    .uri(url
                            + op.route
                            + InternalJson.decode(json, Release.class).reservationId())
                    .exchangeToMono(r -> r.statusCode().isError()
                            ? error(r, url)
                            : r.releaseBody().thenReturn("{}"));
        return post(url + op.route, json, requestId, trace)
                .exchangeToMono(r -> r.statusCode().isError() ? error(r, url) : r.bodyToMono(String.class));
    }

    @Override
    public Flux<String> stream(
            String url, WorkerOp op, String requestId, String trace, String json, Runnable accepted) {
        return post(url + op.route, json, requestId, trace)
                .accept(MediaType.APPLICATION_NDJSON)
                .exchangeToFlux(r -> {
                    if (r.statusCode().isError()) return error(r, url).flux().cast(String.class);
                    accepted.run();
                    return r.bodyToFlux(String.class).filter(line -> !line.isBlank());
                });
    }

    private WebClient.RequestHeadersSpec<?> post(String url, String json, String requestId, String trace) {
        var spec = web.post().uri(url);
        if (requestId != null) spec = spec.header("X-Request-Id", requestId);
        if (trace != null) spec = spec.header(Tracing.TRACEPARENT, trace);
        return spec.contentType(MediaType.APPLICATION_JSON).bodyValue(json);
    }

    /** A worker's error answer as a {@link WorkerClient.WorkerException} (its JSON body, when it has one). */
    static <T> Mono<T> error(ClientResponse r, String url) {
        int status = r.statusCode().value();
        return r.bodyToMono(String.class)
                .map(b -> InternalJson.decode(b, WorkerError.class))
                .defaultIfEmpty(new WorkerError("http_" + status, "no body"))
                .onErrorResume(e -> Mono.just(new WorkerError("http_" + status, "unreadable error body")))
                .flatMap(e -> Mono.error(new WorkerClient.WorkerException(url, status, e.code(), e.message())));
    }
}
