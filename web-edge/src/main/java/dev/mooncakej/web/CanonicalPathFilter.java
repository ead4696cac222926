package dev.mooncakej.web;

import java.nio.charset.StandardCharsets;
import org.springframework.core.Ordered;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebFilter;
import org.springframework.web.server.WebFilterChain;
import reactor.core.publisher.Mono;

/**
 * The first filter of every service: a request whose raw path is not already in the form routing
 * matches is refused with 400 before any other guard or route sees it. Routing decodes percent
 * escapes and drops {@code ;} parameters from each segment, so a guard that compared the raw path
 * ({@code /%69nternal/leader}, {@code /internal;a/leader}) decided on another path than the one that
 * was served. With this filter first, the raw path is the routed path, and every later guard (the
 * cluster credential, the body limit, API keys) decides on exactly what routing uses.
 *
 * <p>Canonical: starts with {@code /}; only unreserved and sub-delimiter characters and {@code :@/}
 * (RFC 3986 {@code pchar} without percent escapes and without {@code ;}); no empty segment ({@code
 * //}); no {@code .} or {@code ..} segment. No route of any service needs anything else.
 */
public final class CanonicalPathFilter implements WebFilter, Ordered {
    /** Runs before every other filter (the internal plane's is next). */
    public static final int ORDER = Ordered.HIGHEST_PRECEDENCE;

    private static final boolean[] ALLOWED = new boolean[128];

    static {
        for (char c = 'a'; c <= 'z'; c++) ALLOWED[c] = true;
        for (char c = 'A'; c <= 'Z'; c++) ALLOWED[c] = true;
        for (char c = '0'; c <= '9'; c++) ALLOWED[c] = true;
        for (char c : "-._~!$&'()*+,=:@/".toCharArray()) ALLOWED[c] = true;
    }

    /** Why a raw request path is not canonical, or null when it is. */
    public static String problem(String rawPath) {
        if (rawPath == null || rawPath.isEmpty() || rawPath.charAt(0) != '/') return "it does not start with '/'";
        int segmentStart = 1;
        for (int i = 0; i <= rawPath.length(); i++) {
            char c = i < rawPath.length() ? rawPath.charAt(i) : '/';
            if (c == '%') return "it holds a percent-encoded character";
            if (c == ';') return "it holds a ';' parameter";
            if (c >= 128 || !ALLOWED[c]) return "it holds a character a path here never needs (" + describe(c) + ")";
            if (c == '/' && i > 0) {
                int len = i - segmentStart;
                boolean last = i == rawPath.length();
                if (len == 0 && !last) return "it holds an empty segment ('//')";
                if ((len == 1 && rawPath.charAt(segmentStart) == '.')
                        || (len == 2 && rawPath.startsWith("..", segmentStart)))
                    return "it holds a '.' or '..' segment";
                segmentStart = i + 1;
            }
        }
        return null;
    }

    private static String describe(char c) {
        if (c == '\\') return "a backslash";
        if (c == '"') return "a double quote";
        if (c < 32 || c == 127) return "a control character";
        if (c >= 128) return "a character outside ASCII";
        return "'" + c + "'";
    }

    @Override
    public Mono<Void> filter(ServerWebExchange exchange, WebFilterChain chain) {
        String problem = problem(exchange.getRequest().getPath().value());
        if (problem == null) return chain.filter(exchange);
        var response = exchange.getResponse();
        response.setStatusCode(HttpStatus.BAD_REQUEST);
        response.getHeaders().setContentType(MediaType.APPLICATION_JSON);
        byte[] body = ("{\"error\":{\"message\":\"the request path is not in canonical form: " + problem
                        + "; send the path as routes are written, unencoded (e.g. /v1/chat/completions)\","
                        + "\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"non_canonical_path\"}}")
                .getBytes(StandardCharsets.UTF_8);
        return response.writeWith(Mono.just(response.bufferFactory().wrap(body)));
    }

    @Override
    public int getOrder() {
        return ORDER;
    }
}
