package dev.mooncakej.conductor.api;

import java.nio.charset.StandardCharsets;
import org.springframework.core.Ordered;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.MediaType;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;
import tools.jackson.databind.json.JsonMapper;

/**
 * The OpenAI endpoint's cheap checks, from the headers alone, before a byte of the body is read: the
 * API key ({@link ApiKeys#authenticate}: 401), then for a request with a body the key's concurrency
 * and requests-per-minute limits ({@link ApiKeys#admit}: 429 with Retry-After). The slot taken is
 * released when the exchange ends, whatever ended it: the response written, an error, or the client
 * gone at any point (reading its body, waiting for the tokenizer, mid-stream). A keyless caller
 * therefore holds no buffer and no tokenizer time, and every request that reaches the tokenizer has
 * counted against its key. The tenant travels to the controller as the exchange attribute {@link
 * #TENANT}.
 */
@Component
public class ApiKeyFilter implements WebFilter, Ordered {
    /** The exchange attribute holding the caller's {@link ApiKeys.Tenant} (absent when the endpoint is open). */
    public static final String TENANT = "mooncakej.tenant";

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private final ApiKeys keys;

    public ApiKeyFilter(ApiKeys keys) {
        this.keys = keys;
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        String path = exchange.getRequest().getPath().value();
        if (!keys.enabled() || !(path.startsWith("/v1/") || path.equals("/tokenize") || path.equals("/detokenize")))
            return chain.filter(exchange);
        ApiKeys.Tenant tenant;
        Runnable release;
        try {
            tenant = keys.authenticate(exchange.getRequest().getHeaders().getFirst(HttpHeaders.AUTHORIZATION));
            release = HttpMethod.GET.equals(exchange.getRequest().getMethod()) ? () -> {} : keys.admit(tenant);
        } catch (ApiException e) {
            return write(exchange, e);
        }
        exchange.getAttributes().put(TENANT, tenant);
        return chain.filter(exchange).doFinally(s -> release.run());
    }

    /** An OpenAI error body with the status (and Retry-After) of {@code e}, written at once. */
    static Mono<Void> write(ServerWebExchange exchange, ApiException e) {
        var response = exchange.getResponse();
        response.setStatusCode(HttpStatusCode.valueOf(e.status()));
        response.getHeaders().setContentType(MediaType.APPLICATION_JSON);
        if (e.retryAfterSeconds() != null)
            response.getHeaders().set(HttpHeaders.RETRY_AFTER, String.valueOf(e.retryAfterSeconds()));
        byte[] body = JSON.writeValueAsString(e.body()).getBytes(StandardCharsets.UTF_8);
        return response.writeWith(Mono.just(response.bufferFactory().wrap(body)));
    }

    @Override
    public int getOrder() {
        return Ordered.HIGHEST_PRECEDENCE + 5; // after the canonical path and the internal plane, before the body limit
    }
}
