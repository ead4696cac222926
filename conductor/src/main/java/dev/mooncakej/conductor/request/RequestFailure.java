package dev.mooncakej.conductor.request;

/**
 * How a request ended without an answer, as the request path knows it: a kind, a message for the
 * client (naming what to do next) and, where retrying can help, when. Only {@code api/} turns it into
 * an HTTP status and an OpenAI error body; the path itself knows nothing of HTTP.
 */
public final class RequestFailure extends RuntimeException {
    /** Why: each kind has one HTTP rendering, in {@code api/}. */
    public enum Kind {
        /** This conductor is a standby; the leader serves. */
        STANDBY,
        /** No prefill or decode worker is admitted, or none can take this request. */
        NO_WORKERS,
        /** Admission refused it (predicted TTFT or decode load over the SLO). */
        OVERLOADED,
        /** Every decode worker's KV cache is full. */
        KV_FULL,
        /** No decode worker answered the reservation. */
        WORKER_UNAVAILABLE,
        /** The prefill worker failed, or its call did. */
        PREFILL_FAILED,
        /** The decode worker failed mid-stream. */
        DECODE_FAILED,
        /** A worker's answer did not validate (a token outside the vocabulary, a malformed result). */
        BAD_WORKER_ANSWER,
        /** A worker refused the request as invalid (its message says why). */
        REJECTED_BY_WORKER
    }

    private final Kind kind;
    private final Integer retryAfterSeconds;

    public RequestFailure(Kind kind, String message, Integer retryAfterSeconds) {
        super(message);
        this.kind = kind;
        this.retryAfterSeconds = retryAfterSeconds;
    }

    public Kind kind() {
        return kind;
    }

    /** When a retry may succeed, in seconds; null where retrying the same request will not help. */
    public Integer retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
