package dev.mooncakej.web;

import dev.mooncakej.kvcache.wire.ClusterCredential;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import org.springframework.core.Ordered;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * Refuses, before any controller runs, a call to an internal route ({@code /internal/*}, and the
 * route listing {@code /actuator/mappings}) that does not carry the cluster credential
 * ({@link ClusterCredential#HEADER}): 401 with a JSON body that says what is missing, never why a
 * value was wrong. Public routes (the OpenAI API, health, metrics) pass untouched.
 */
public final class InternalPlaneFilter implements WebFilter, Ordered {
    private static final byte[] REFUSED = ("{\"code\":\"unauthorized\",\"message\":\"internal routes need the cluster "
                    + "credential (header " + ClusterCredential.HEADER + ")\"}")
            .getBytes(StandardCharsets.UTF_8);

    private final ClusterCredential credential;

    public InternalPlaneFilter(ClusterCredential credential) {
        this.credential = credential;
    }

    /**
     * Whether a path belongs to the internal plane. Compared without regard to case, so a route that
     * some day matches case-insensitively is still guarded; {@link CanonicalPathFilter} has already
     * refused every path whose raw form differs from the one routing matches.
     */
    public static boolean internal(String path) {
        String p = path.toLowerCase(Locale.ROOT);
        return p.startsWith("/internal/") || p.equals("/internal") || p.startsWith("/actuator/mappings");
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        String path = exchange.getRequest().getPath().pathWithinApplication().value();
        if (!internal(path)
                || credential.accepts(exchange.getRequest().getHeaders().getFirst(ClusterCredential.HEADER)))
            return chain.filter(exchange);
        var response = exchange.getResponse();
        response.setStatusCode(HttpStatus.UNAUTHORIZED);
        response.getHeaders().setContentType(MediaType.APPLICATION_JSON);
        return response.writeWith(Mono.just(response.bufferFactory().wrap(REFUSED)));
    }

    @Override
    public int getOrder() {
        return CanonicalPathFilter.ORDER + 1;
    }
}
