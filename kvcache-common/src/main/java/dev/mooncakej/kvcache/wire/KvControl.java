package dev.mooncakej.kvcache.wire;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The KV control messages that travel as transfer-engine notifications (over the authenticated
 * control channel, never HTTP) between a prefill worker and the decode worker whose reservation it
 * writes, and the status byte each is answered with. One codec, used by both sides.
 *
 * <pre>
 * offset  size  field
 *      0     1  type: 1 CLAIM, 2 COMMIT, 3 ABORT, 4 STOPPED
 *      1     1  version (1)
 *      2     2  zero
 *      4     4  zero
 *      8     8  reservation id (u64, little endian)
 *     16     8  argument: COMMIT = prompt tokens whose KV is complete; otherwise 0
 *     24     1  CLAIM only: n, the length of the writer's segment name, then n bytes of it (ASCII)
 * </pre>
 *
 * The fencing protocol (docs/architecture.md): a prefill worker CLAIMs a reservation before its first
 * write and writes only after {@link #OK}; COMMITs it after its last write completed. A decode worker
 * that drops a claimed, uncommitted reservation (cancel, reap) fences its blocks (no other request
 * gets them) and sends the writer ABORT; the writer answers {@link #OK} when nothing of it is writing
 * (then the blocks are free) or {@link #STOPPING}, and sends STOPPED once its last write has ended.
 */
public record KvControl(byte type, long reservationId, long argument, String writer) {
    public static final byte CLAIM = 1;
    public static final byte COMMIT = 2;
    public static final byte ABORT = 3;
    public static final byte STOPPED = 4;
    static final byte VERSION = 1;
    static final int HEADER = 24;

    /** Status bytes. */
    public static final byte OK = 0;

    public static final byte UNKNOWN_RESERVATION = 1;
    public static final byte REJECTED = 2;
    /** The reservation was cancelled or reaped: do not write into it. */
    public static final byte FENCED = 3;

    public static final byte MALFORMED = 4;
    /** ABORT accepted, writes still in flight: a STOPPED follows when they have ended. */
    public static final byte STOPPING = 5;

    public KvControl {
        if (type < CLAIM || type > STOPPED)
            throw new IllegalArgumentException(
                    "kv control type " + type + ": expected 1..4 (CLAIM, COMMIT, ABORT, STOPPED)");
        if (type == CLAIM) {
            if (writer == null || !writer.matches("[A-Za-z0-9._-]{1,64}"))
                throw new IllegalArgumentException(
                        "kv control CLAIM writer '" + writer + "': expected a segment name of 1-64 [A-Za-z0-9._-]");
        } else if (writer != null) {
            throw new IllegalArgumentException("kv control type " + type + " carries no writer, got '" + writer + "'");
        }
        if (type != COMMIT && argument != 0)
            throw new IllegalArgumentException("kv control type " + type + " argument " + argument + ": expected 0");
        if (type == COMMIT && argument < 1)
            throw new IllegalArgumentException("kv control COMMIT of " + argument + " tokens: expected >= 1");
    }

    public static KvControl claim(long reservationId, String writer) {
        return new KvControl(CLAIM, reservationId, 0, writer);
    }

    public static KvControl commit(long reservationId, long tokens) {
        return new KvControl(COMMIT, reservationId, tokens, null);
    }

    public static KvControl abort(long reservationId) {
        return new KvControl(ABORT, reservationId, 0, null);
    }

    public static KvControl stopped(long reservationId) {
        return new KvControl(STOPPED, reservationId, 0, null);
    }

    public byte[] encode() {
        byte[] w = writer == null ? new byte[0] : writer.getBytes(StandardCharsets.US_ASCII);
        ByteBuffer b =
                ByteBuffer.allocate(HEADER + (type == CLAIM ? 1 + w.length : 0)).order(ByteOrder.LITTLE_ENDIAN);
        b.put(type)
                .put(VERSION)
                .putShort((short) 0)
                .putInt(0)
                .putLong(reservationId)
                .putLong(argument);
        if (type == CLAIM) b.put((byte) w.length).put(w);
        return b.array();
    }

    /** Decodes a notification payload; throws {@link IllegalArgumentException} naming what is wrong. */
    public static KvControl decode(byte[] p) {
        if (p == null || p.length < HEADER)
            throw new IllegalArgumentException(
                    "kv control message of " + (p == null ? 0 : p.length) + " bytes: expected at least " + HEADER);
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN);
        byte type = b.get(0);
        if (b.get(1) != VERSION)
            throw new IllegalArgumentException("kv control version " + b.get(1) + ": expected " + VERSION);
        if (b.getShort(2) != 0 || b.getInt(4) != 0)
            throw new IllegalArgumentException("kv control reserved bytes are not zero");
        long id = b.getLong(8), arg = b.getLong(16);
        String writer = null;
        if (type == CLAIM) {
            if (p.length < HEADER + 1) throw new IllegalArgumentException("kv control CLAIM without the writer's name");
            int n = p[HEADER] & 0xFF;
            if (p.length != HEADER + 1 + n)
                throw new IllegalArgumentException(
                        "kv control CLAIM of " + p.length + " bytes: its name length says " + (HEADER + 1 + n));
            writer = new String(p, HEADER + 1, n, StandardCharsets.US_ASCII);
        } else if (p.length != HEADER) {
            throw new IllegalArgumentException(
                    "kv control type " + type + " of " + p.length + " bytes: expected " + HEADER);
        }
        return new KvControl(type, id, arg, writer);
    }
}
