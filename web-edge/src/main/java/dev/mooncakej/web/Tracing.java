package dev.mooncakej.web;

import io.micrometer.tracing.Span;
import io.micrometer.tracing.Tracer;
import io.micrometer.tracing.propagation.Propagator;
import java.util.Map;

/**
 * The spans of a request as it crosses the services (docs/operations.md, "Traces"): the conductor's
 * request span, continued from a client's W3C {@code traceparent} when it sent one, and each worker's
 * span, a child of the span its call carries (the control channel's call frame or the HTTP
 * {@code traceparent} header). Spans are passed explicitly as {@link Traced} (a request hops threads:
 * event loops, the prefill queue, the decode agent), never through a thread's current span.
 * {@link #OFF} (tracing not configured) makes no spans and carries no context.
 */
public final class Tracing {
    /** No tracing: every span is {@link Traced#NONE}. */
    public static final Tracing OFF = new Tracing(Tracer.NOOP, Propagator.NOOP);

    /** The header (and control frame field) that carries a span to the next service. */
    public static final String TRACEPARENT = "traceparent";

    final Tracer tracer;
    final Propagator propagator;

    public Tracing(Tracer tracer, Propagator propagator) {
        this.tracer = tracer;
        this.propagator = propagator;
    }

    /**
     * How log lines name the request {@code requestId} whose caller's span is {@code traceparent}: with
     * its trace id ({@code id trace=<id>}) when it is a W3C traceparent, the id alone otherwise.
     */
    public static String logId(String requestId, String traceparent) {
        return traceparent != null && traceparent.length() == 55 && traceparent.charAt(2) == '-'
                ? requestId + " trace=" + traceparent.substring(3, 35)
                : requestId;
    }

    /** Whether spans are made at all. */
    public boolean on() {
        return tracer != Tracer.NOOP;
    }

    /**
     * A started span of kind SERVER named {@code name}: the child of the remote span {@code traceparent}
     * names (a client's or a calling service's), or a new trace's root when it is null, empty or not a
     * W3C traceparent (an invalid one is ignored, as the W3C specification asks).
     */
    public Traced serve(String name, String traceparent) {
        if (!on()) return Traced.NONE;
        Map<String, String> carrier =
                traceparent == null || traceparent.isEmpty() ? Map.of() : Map.of(TRACEPARENT, traceparent);
        Span span = propagator
                .extract(carrier, (c, k) -> c.get(k))
                .name(name)
                .kind(Span.Kind.SERVER)
                .start();
        return new Traced(this, span);
    }
}
