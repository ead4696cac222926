package dev.mooncakej.web;

import dev.mooncakej.kvcache.wire.ControlFrame;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerError;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;

/**
 * What a worker answers on its control channel ({@link ControlChannelEndpoint}): the same operations
 * as its HTTP routes, with the same validation, logging and error statuses. A worker declares one
 * bean of this type; without one, the service serves no channel.
 */
public interface ChannelOps {
    /** Whether {@code op} answers with a stream of items (otherwise with one reply). */
    boolean streams(int op);

    /**
     * The one answer (a JSON message) to a call; may throw or fail like the HTTP route would. {@code
     * trace}: the caller's span (a W3C traceparent; empty when not traced).
     */
    Mono<String> call(int op, String json, String requestId, String trace);

    /** The items (JSON messages) of a streaming call; cancelled when the caller cancels or leaves. */
    Flux<String> stream(int op, String json, String requestId, String trace);

    /** The HTTP status and body the route would answer for this failure. */
    Refusal refusal(Throwable e);

    /** A failure as the HTTP route would answer it. */
    record Refusal(int status, WorkerError error) {}

    /** Thrown by an operation to answer with a given status (a reservation without room is 429). */
    final class Refused extends RuntimeException {
        private final int status;
        private final String code;

        public Refused(int status, String code, String message) {
            super(message, null, false, false);
            this.status = status;
            this.code = code;
        }

        public Refusal refusal() {
            return new Refusal(status, new WorkerError(code, getMessage()));
        }
    }

    /** An operation this worker does not have: 404 as an unknown route. */
    static Refused unknown(int op) {
        return new Refused(404, "unknown_operation", "operation " + op + " is not served by this worker");
    }

    /** The error frame for a failure of call {@code call}. */
    default ControlFrame errorFrame(long call, Throwable e) {
        Refusal r = e instanceof Refused x ? x.refusal() : refusal(e);
        return ControlFrame.error(call, r.status(), r.error());
    }
}
