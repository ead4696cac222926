package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.request.RequestFailure;
import java.util.LinkedHashMap;
import java.util.Map;

/** An error for the client, rendered as OpenAI's {@code {"error":{"message","type","param","code"}}}. */
public final class ApiException extends RuntimeException {
    private final int status;
    private final String type;
    private final String param;
    private final String code;
    private final Integer retryAfterSeconds;

    public ApiException(int status, String type, String param, String code, String message, Integer retryAfterSeconds) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
        this.retryAfterSeconds = retryAfterSeconds;
    }

    public static ApiException invalid(String param, String message) {
        return new ApiException(400, "invalid_request_error", param, "invalid_value", message, null);
    }

    public static ApiException invalid(String param, String code, String message) {
        return new ApiException(400, "invalid_request_error", param, code, message, null);
    }

    /** The one HTTP rendering of each way the request path can fail (the path knows nothing of HTTP). */
    public static ApiException of(RequestFailure f) {
        return switch (f.kind()) {
            case STANDBY ->
                new ApiException(503, "service_unavailable", null, "standby", f.getMessage(), f.retryAfterSeconds());
            case NO_WORKERS ->
                new ApiException(503, "service_unavailable", null, "no_workers", f.getMessage(), f.retryAfterSeconds());
            case OVERLOADED, KV_FULL ->
                new ApiException(429, "rate_limit_exceeded", null, "overloaded", f.getMessage(), f.retryAfterSeconds());
            case WORKER_UNAVAILABLE ->
                new ApiException(
                        503, "service_unavailable", null, "worker_unavailable", f.getMessage(), f.retryAfterSeconds());
            case PREFILL_FAILED ->
                new ApiException(
                        503, "service_unavailable", null, "prefill_failed", f.getMessage(), f.retryAfterSeconds());
            case DECODE_FAILED -> new ApiException(500, "server_error", null, "decode_failed", f.getMessage(), null);
            case BAD_WORKER_ANSWER ->
                new ApiException(502, "server_error", null, "bad_worker_answer", f.getMessage(), null);
            case REJECTED_BY_WORKER ->
                new ApiException(400, "invalid_request_error", null, "rejected_by_worker", f.getMessage(), null);
        };
    }

    /** The same error about the {@code i}th prompt of a batch. */
    public ApiException forPrompt(int i) {
        return new ApiException(
                status,
                type,
                param == null ? "prompt" : param,
                code,
                "prompt[" + i + "]: " + getMessage(),
                retryAfterSeconds);
    }

    public int status() {
        return status;
    }

    public Integer retryAfterSeconds() {
        return retryAfterSeconds;
    }

    public Map<String, Object> body() {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("message", getMessage());
        e.put("type", type);
        e.put("param", param);
        e.put("code", code);
        return Map.of("error", e);
    }
}
