package dev.mooncakej.web;

import io.micrometer.tracing.Span;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One service's span of a request ({@link Tracing}), with its attributes, its parts and the context it
 * carries onward. Parts measured with {@link System#nanoTime()} on the way (a queue wait, a compute)
 * become child spans after the fact, placed on the wall clock from this span's start. {@link #NONE}
 * (not traced) does nothing.
 */
public final class Traced {
    /** Not traced. */
    public static final Traced NONE = new Traced(null, Span.NOOP);

    private final Tracing tracing;
    private final Span span;
    private final long startMicros = epochMicros(), startNanos = System.nanoTime();

    Traced(Tracing tracing, Span span) {
        this.tracing = tracing;
        this.span = span;
    }

    /** Whether this span is recorded (not {@link #NONE}). */
    public boolean on() {
        return tracing != null;
    }

    public Traced tag(String key, String value) {
        if (on() && value != null) span.tag(key, value);
        return this;
    }

    public Traced tag(String key, long value) {
        if (on()) span.tag(key, value);
        return this;
    }

    public Traced tag(String key, double value) {
        if (on() && Double.isFinite(value)) span.tag(key, value);
        return this;
    }

    public Traced tag(String key, boolean value) {
        if (on()) span.tag(key, value);
        return this;
    }

    /** A started child span (end it with {@link #end()}). */
    public Traced child(String name) {
        if (!on()) return NONE;
        return new Traced(
                tracing,
                tracing.tracer
                        .spanBuilder()
                        .setParent(span.context())
                        .name(name)
                        .start());
    }

    /**
     * A child span for a part that already happened, from {@code fromNanos} to {@code toNanos} (both
     * {@link System#nanoTime()}), with its attributes as key, value pairs (strings, numbers, booleans).
     */
    public void part(String name, long fromNanos, long toNanos, Object... attributes) {
        if (!on()) return;
        long from = startMicros + (fromNanos - startNanos) / 1000, to = startMicros + (toNanos - startNanos) / 1000;
        Span s = tracing.tracer
                .spanBuilder()
                .setParent(span.context())
                .name(name)
                .startTimestamp(from, TimeUnit.MICROSECONDS)
                .start();
        Traced t = new Traced(tracing, s);
        for (int i = 0; i + 1 < attributes.length; i += 2) {
            String k = (String) attributes[i];
            switch (attributes[i + 1]) {
                case Integer v -> t.tag(k, (long) v);
                case Long v -> t.tag(k, (long) v);
                case Double v -> t.tag(k, (double) v);
                case Boolean v -> t.tag(k, (boolean) v);
                case null -> {}
                default -> t.tag(k, String.valueOf(attributes[i + 1]));
            }
        }
        s.end(Math.max(from, to), TimeUnit.MICROSECONDS);
    }

    /** The W3C traceparent of this span, to carry to the next service; null when not traced. */
    public String traceparent() {
        if (!on()) return null;
        Map<String, String> carrier = new HashMap<>(2);
        tracing.propagator.inject(span.context(), carrier, Map::put);
        return carrier.get(Tracing.TRACEPARENT);
    }

    /** The trace id, for log lines; "-" when not traced. */
    public String traceId() {
        return on() ? span.context().traceId() : "-";
    }

    /** How log lines name the request {@code requestId}: with this trace's id when traced ({@code id trace=<id>}). */
    public String logId(String requestId) {
        return on() ? requestId + " trace=" + traceId() : requestId;
    }

    /** Marks the span failed with {@code e} (it still needs {@link #end()}). */
    public Traced error(Throwable e) {
        if (on() && e != null) span.error(e);
        return this;
    }

    public void end() {
        if (on()) span.end();
    }

    private static long epochMicros() {
        Instant t = Instant.now();
        return t.getEpochSecond() * 1_000_000 + t.getNano() / 1000;
    }
}
