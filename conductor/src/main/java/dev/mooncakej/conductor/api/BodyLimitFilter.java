package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.ConductorProperties;
import java.util.concurrent.atomic.AtomicLong;
import org.springframework.core.Ordered;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DataBufferUtils;
import org.springframework.http.codec.ServerCodecConfigurer;
import org.springframework.http.server.reactive.ServerHttpRequestDecorator;
import org.springframework.stereotype.Component;
import org.springframework.web.reactive.config.WebFluxConfigurer;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * The OpenAI endpoint's request body limit ({@code mooncakej.conductor.max-body-bytes}): a body
 * declared larger gets 413 with an OpenAI error body before a byte of it is read; a body that grows
 * past the limit without declaring its length fails the same way as soon as it does. The codecs that
 * read bodies buffer up to the same limit ({@link #configureHttpMessageCodecs}); their own default
 * (256 KiB) refused every body above it with a 413 that named the wrong limit.
 */
@Component
public class BodyLimitFilter implements WebFilter, Ordered, WebFluxConfigurer {
    private final long limit;

    public BodyLimitFilter(ConductorProperties props) {
        this.limit = props.maxBodyBytes();
    }

    static ApiException tooLarge(long bytes, long limit) {
        return new ApiException(
                413,
                "invalid_request_error",
                null,
                "request_too_large",
                "the request body " + (bytes >= 0 ? "has " + bytes + " bytes" : "is larger than the limit")
                        + "; this server accepts at most " + limit + " (mooncakej.conductor.max-body-bytes)",
                null);
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        String path = exchange.getRequest().getPath().value();
        if (!path.startsWith("/v1/") && !path.equals("/tokenize") && !path.equals("/detokenize"))
            return chain.filter(exchange);
        long declared = exchange.getRequest().getHeaders().getContentLength();
        if (declared > limit) return ApiKeyFilter.write(exchange, tooLarge(declared, limit));
        AtomicLong seen = new AtomicLong();
        var counted = new ServerHttpRequestDecorator(exchange.getRequest()) {
            @Override
            public Flux<DataBuffer> getBody() {
                return super.getBody().map(b -> {
                    if (seen.addAndGet(b.readableByteCount()) > limit) {
                        DataBufferUtils.release(b);
                        throw tooLarge(-1, limit);
                    }
                    return b;
                });
            }
        };
        return chain.filter(exchange.mutate().request(counted).build());
    }

    /** The codecs buffer what the limit lets through (and a little more, for the framing of a chunked body). */
    @Override
    public void configureHttpMessageCodecs(ServerCodecConfigurer codecs) {
        codecs.defaultCodecs().maxInMemorySize((int) Math.min(Integer.MAX_VALUE, limit + 1024));
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE + 10;
    }
}
