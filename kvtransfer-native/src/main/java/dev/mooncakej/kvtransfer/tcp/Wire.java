package dev.mooncakej.kvtransfer.tcp;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;

/**
 * The tcp transport's wire format (little endian). After the receiver's HMAC challenge
 * ({@link dev.mooncakej.kvtransfer.PeerAuth}) and its one-byte {@link #AUTH_OK}, the client sends groups:
 *
 * <pre>
 * group header (16 bytes): u32 magic "MTE1" | u8 op | 3 bytes zero | u32 count | u32 groupId
 * entries (24 bytes each):  u64 tag | u64 offset (in the receiver's segment) | u64 length
 * WRITE: then the data of every entry, back to back
 * reply header (16 bytes): same magic, op, count, groupId; then count status bytes (0 ok, 1 invalid)
 * READ reply: then the data of every ok entry, back to back
 * NOTIFY: one entry (tag 0, offset 0, length = payload bytes), the payload; reply status = the handler's byte
 * HANDSHAKE (rdma queue pairs): like NOTIFY; reply: status byte, u32 length, that many bytes (JSON)
 * </pre>
 * A group is at most {@link #MAX_ENTRIES} entries of at most {@link #MAX_LENGTH} bytes. Anything else
 * (bad magic, op, count or length) is malformed and closes that connection only.
 */
public final class Wire {
    public static final int MAGIC = 0x3145_544D; // "MTE1" as little-endian u32
    public static final int HEADER = 16;
    public static final int ENTRY = 24;
    public static final byte WRITE = 1;
    public static final byte READ = 2;
    public static final byte NOTIFY = 3;
    public static final byte HANDSHAKE = 4;
    public static final byte AUTH_OK = 0x5A;
    public static final byte OK = 0;
    public static final byte INVALID = 1;
    public static final int MAX_ENTRIES = 1024;
    public static final long MAX_LENGTH = 64L << 20;
    public static final int MAX_NOTIFY = 64 * 1024;

    private Wire() {}

    /** Writes a group header (16 bytes, see above) at the buffer's position: the one encoder of every side. */
    public static ByteBuffer putHeader(ByteBuffer b, byte op, int count, int group) {
        return b.putInt(MAGIC)
                .put(op)
                .put((byte) 0)
                .put((byte) 0)
                .put((byte) 0)
                .putInt(count)
                .putInt(group);
    }

    /** Fields of a group header at offset 0 of {@code b} (absolute reads: a flyweight over the buffer). */
    public static int magic(ByteBuffer b) {
        return b.getInt(0);
    }

    public static byte op(ByteBuffer b) {
        return b.get(4);
    }

    public static int count(ByteBuffer b) {
        return b.getInt(8);
    }

    public static int group(ByteBuffer b) {
        return b.getInt(12);
    }

    /** True when the header's magic is ours and its three padding bytes are zero. */
    public static boolean wellFormed(ByteBuffer b) {
        return magic(b) == MAGIC && b.get(5) == 0 && b.get(6) == 0 && b.get(7) == 0;
    }

    public static void readFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) throw new EOFException("peer closed the connection");
        }
    }

    public static void readFully(SocketChannel ch, ByteBuffer[] bs, int from, int to) throws IOException {
        while (from < to) {
            if (ch.read(bs, from, to - from) < 0) throw new EOFException("peer closed the connection");
            while (from < to && !bs[from].hasRemaining()) from++;
        }
    }

    public static void writeFully(SocketChannel ch, ByteBuffer[] bs, int n) throws IOException {
        int from = 0;
        while (from < n) {
            ch.write(bs, from, n - from);
            while (from < n && !bs[from].hasRemaining()) from++;
        }
    }
}
