package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.request.RequestFailure;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.annotation.Order;
import org.springframework.http.HttpStatus;
import org.springframework.stereotype.Component;
import org.springframework.web.server.ResponseStatusException;
import org.springframework.web.server.ServerWebExchange;
import org.springframework.web.server.WebExceptionHandler;
import reactor.core.publisher.Mono;

/**
 * Whatever no controller answered (a route that is not served, a method it does not take, a body
 * type it does not read, or a failure before a controller ran) gets an OpenAI error body with the
 * status that says so (404, 405, 415, ...), never Spring's default page nor an exception's text.
 */
@Component
@Order(-2) // before Spring Boot's default error handler
public class OpenAiErrors implements WebExceptionHandler {
    private static final Logger LOG = LoggerFactory.getLogger(OpenAiErrors.class);

    @Override
    public Mono<Void> handle(ServerWebExchange exchange, Throwable ex) {
        var response = exchange.getResponse();
        if (response.isCommitted()) return Mono.error(ex);
        return ApiKeyFilter.write(exchange, describe(exchange, ex));
    }

    private static ApiException describe(ServerWebExchange exchange, Throwable ex) {
        for (Throwable t = ex; t != null; t = t.getCause()) {
            if (t instanceof ApiException a) return a;
            if (t instanceof RequestFailure f) return ApiException.of(f);
        }
        String route = exchange.getRequest().getMethod() + " "
                + exchange.getRequest().getPath().value();
        if (ex instanceof ResponseStatusException rse) {
            int status = rse.getStatusCode().value();
            String code = switch (status) {
                case 404 -> "not_found";
                case 405 -> "method_not_allowed";
                case 415 -> "unsupported_media_type";
                case 406 -> "not_acceptable";
                default -> status >= 500 ? "internal_error" : "invalid_request";
            };
            String message = switch (status) {
                case 404 ->
                    "no route " + route + " on this server (it serves /v1/models, /v1/completions and "
                            + "/v1/chat/completions)";
                case 405 -> route + ": method not allowed on this route";
                case 415 -> route + ": send a JSON body (Content-Type: application/json)";
                default ->
                    route + ": " + HttpStatus.valueOf(status).getReasonPhrase().toLowerCase();
            };
            return new ApiException(
                    status, status >= 500 ? "server_error" : "invalid_request_error", null, code, message, null);
        }
        LOG.error("{} failed before a controller answered", route, ex);
        return new ApiException(
                500, "server_error", null, "internal_error", "the request failed; the conductor's log says why", null);
    }
}
