package dev.mooncakej.kvcache.wire;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * One frame of the conductor's control channel to a worker (docs/architecture.md, "Control
 * channel"): a WebSocket binary message on {@code /internal/channel}, which carries the calls that
 * otherwise each take an HTTP exchange (reserve, prefill, decode, cancel) over one kept-open,
 * authenticated connection per worker. Calls are told apart by a call id the caller picks; many are in
 * flight at once.
 *
 * <p>Layout, big-endian: {@code kind u8, call u64}, then by kind:
 *
 * <ul>
 *   <li>{@link #CALL}: {@code op u8, request-id length u16, request id (UTF-8), trace length u8, trace,
 *       payload}; the trace is the caller's W3C {@code traceparent} (the span the call belongs to, as an
 *       HTTP call carries it in that header), empty when the call is not traced
 *   <li>{@link #REPLY} (the one answer, ends the call), {@link #ITEM} (one element of a stream):
 *       {@code payload}
 *   <li>{@link #END} (a stream ended), {@link #CANCEL} (the caller gave up on the call): nothing
 *   <li>{@link #ERROR} (ends the call): {@code status u16, payload} (a {@link WorkerMessages.WorkerError},
 *       the status as its HTTP route would answer)
 * </ul>
 *
 * Payloads are the messages of {@link WorkerMessages} in {@link InternalJson}, validated exactly as on
 * the HTTP routes. A frame that does not parse is an {@link IllegalArgumentException} naming what is
 * wrong; the receiver closes the channel (a peer that sends garbage is not trusted with more calls).
 */
public record ControlFrame(int kind, long call, int op, String requestId, String trace, int status, byte[] payload) {
    public static final int CALL = 1, REPLY = 2, ITEM = 3, END = 4, ERROR = 5, CANCEL = 6;

    /** Operations: a decode worker's reserve, decode (a stream) and release; a prefill worker's prefill. */
    public static final int RESERVE = 1, PREFILL = 2, DECODE = 3, RELEASE = 4;

    /** The largest frame either side accepts (as the HTTP routes' 16 MiB body limit). */
    public static final int MAX_BYTES = 16 << 20;

    private static final byte[] NONE = new byte[0];

    /** A W3C {@code traceparent}: version, trace id, parent span id, flags, lower-case hex. */
    private static final Pattern TRACEPARENT = Pattern.compile("[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}");

    public ControlFrame {
        if (kind < CALL || kind > CANCEL) throw new IllegalArgumentException("frame kind " + kind + ": expected 1..6");
        if (kind == CALL && (op < RESERVE || op > RELEASE))
            throw new IllegalArgumentException(
                    "operation " + op + ": expected 1..4 (reserve, prefill, decode, release)");
        if (kind == ERROR && (status < 100 || status > 599))
            throw new IllegalArgumentException("error status " + status + ": expected 100..599");
        requestId = requestId == null ? "" : requestId;
        trace = trace == null ? "" : trace;
        if (!trace.isEmpty() && !TRACEPARENT.matcher(trace).matches())
            throw new IllegalArgumentException("trace " + (trace.length() > 60 ? trace.substring(0, 60) + "..." : trace)
                    + ": expected a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>) or nothing");
        payload = payload == null ? NONE : payload;
    }

    public static ControlFrame call(long call, int op, String requestId, String json) {
        return call(call, op, requestId, null, json);
    }

    /** A call that belongs to the span {@code trace} names (a W3C traceparent; null: not traced). */
    public static ControlFrame call(long call, int op, String requestId, String trace, String json) {
        return new ControlFrame(CALL, call, op, requestId, trace, 0, utf8(json));
    }

    public static ControlFrame reply(long call, String json) {
        return new ControlFrame(REPLY, call, 0, null, null, 0, utf8(json));
    }

    public static ControlFrame item(long call, String json) {
        return new ControlFrame(ITEM, call, 0, null, null, 0, utf8(json));
    }

    public static ControlFrame end(long call) {
        return new ControlFrame(END, call, 0, null, null, 0, null);
    }

    public static ControlFrame cancel(long call) {
        return new ControlFrame(CANCEL, call, 0, null, null, 0, null);
    }

    public static ControlFrame error(long call, int status, WorkerMessages.WorkerError error) {
        return new ControlFrame(ERROR, call, 0, null, null, status, utf8(InternalJson.encode(error)));
    }

    /** The payload as text (the JSON message). */
    public String text() {
        return new String(payload, StandardCharsets.UTF_8);
    }

    /** Whether this frame is the last of its call. */
    public boolean ends() {
        return kind == REPLY || kind == END || kind == ERROR;
    }

    public byte[] encode() {
        byte[] rid = requestId.getBytes(StandardCharsets.UTF_8);
        byte[] tr = trace.getBytes(StandardCharsets.US_ASCII);
        int head = 9 + (kind == CALL ? 4 + rid.length + tr.length : kind == ERROR ? 2 : 0);
        ByteBuffer b = ByteBuffer.allocate(head + payload.length);
        b.put((byte) kind).putLong(call);
        if (kind == CALL)
            b.put((byte) op)
                    .putShort((short) rid.length)
                    .put(rid)
                    .put((byte) tr.length)
                    .put(tr);
        else if (kind == ERROR) b.putShort((short) status);
        return b.put(payload).array();
    }

    /** Parses one frame; every length is checked against what is there. */
    public static ControlFrame decode(ByteBuffer b) {
        int size = b.remaining();
        if (size > MAX_BYTES)
            throw new IllegalArgumentException("control frame of " + size + " bytes: expected at most " + MAX_BYTES);
        if (size < 9) throw new IllegalArgumentException("control frame of " + size + " bytes: expected at least 9");
        int kind = b.get() & 0xff;
        long call = b.getLong();
        int op = 0, status = 0;
        String rid = null, trace = null;
        if (kind == CALL) {
            if (b.remaining() < 3)
                throw new IllegalArgumentException("call frame of " + size + " bytes: no operation and request id");
            op = b.get() & 0xff;
            int n = b.getShort() & 0xffff;
            if (n > 256 || n > b.remaining())
                throw new IllegalArgumentException("request id of " + n + " bytes in a frame with " + b.remaining()
                        + " left: expected at most 256");
            byte[] r = new byte[n];
            b.get(r);
            rid = new String(r, StandardCharsets.UTF_8);
            if (b.remaining() < 1) throw new IllegalArgumentException("call frame of " + size + " bytes: no trace");
            int t = b.get() & 0xff;
            if (t > 55 || t > b.remaining())
                throw new IllegalArgumentException("trace of " + t + " bytes in a frame with " + b.remaining()
                        + " left: expected at most 55 (a W3C traceparent)");
            byte[] tr = new byte[t];
            b.get(tr);
            trace = new String(tr, StandardCharsets.US_ASCII);
        } else if (kind == ERROR) {
            if (b.remaining() < 2) throw new IllegalArgumentException("error frame of " + size + " bytes: no status");
            status = b.getShort() & 0xffff;
        }
        byte[] payload = new byte[b.remaining()];
        b.get(payload);
        if ((kind == END || kind == CANCEL) && payload.length > 0)
            throw new IllegalArgumentException(
                    "frame kind " + kind + " with " + payload.length + " payload bytes: expected none");
        return new ControlFrame(kind, call, op, rid, trace, status, payload);
    }

    private static byte[] utf8(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }
}
