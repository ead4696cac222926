package dev.mooncakej.kvcache.wire;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A reader's lease at the worker that holds prefix blocks in its own memory, sent over the transfer
 * control channel before the reader copies them: PIN keeps the named blocks from eviction (each only
 * if it still sits at the offset the store master gave), UNPIN lets them go; a pin lapses by itself
 * after the lease time. PROMOTE asks the holder to read blocks of its SSD tier back into DRAM (at
 * the SSD offsets the master gave), so the next reader finds them there. Answered with one byte: for
 * PIN, how many leading blocks are pinned; for PROMOTE, how many blocks it will promote.
 *
 * <pre>
 * offset  size  field
 *      0     1  type: 0x11 PIN, 0x12 UNPIN, 0x13 PROMOTE
 *      1     1  version (1)
 *      2     2  zero
 *      4     4  count (PIN, PROMOTE: 1..255; UNPIN: 0)
 *      8     8  pin id (u64, little endian; PROMOTE: 0)
 *     16    16  PIN, PROMOTE: count times: u64 key, u64 offset (in the holder's segment, or SSD tier)
 * </pre>
 */
public record PoolPin(byte type, long pinId, long[] keys, long[] offsets) {
    public static final byte PIN = 0x11;
    public static final byte UNPIN = 0x12;
    public static final byte PROMOTE = 0x13;
    public static final int MAX_KEYS = 255;
    static final int HEADER = 16;

    public PoolPin {
        if (type != PIN && type != UNPIN && type != PROMOTE)
            throw new IllegalArgumentException(
                    "pool pin type " + type + ": expected 0x11 (PIN), 0x12 (UNPIN) or 0x13 (PROMOTE)");
        keys = keys == null ? new long[0] : keys;
        offsets = offsets == null ? new long[0] : offsets;
        if (keys.length != offsets.length)
            throw new IllegalArgumentException(
                    "pool pin of " + keys.length + " keys and " + offsets.length + " offsets");
        if (type != UNPIN && (keys.length < 1 || keys.length > MAX_KEYS))
            throw new IllegalArgumentException("pool pin of " + keys.length + " blocks: expected 1.." + MAX_KEYS);
        if (type == UNPIN && keys.length != 0) throw new IllegalArgumentException("pool unpin carries no keys");
    }

    public static PoolPin pin(long pinId, long[] keys, long[] offsets) {
        return new PoolPin(PIN, pinId, keys, offsets);
    }

    public static PoolPin promote(long[] keys, long[] ssdOffsets) {
        return new PoolPin(PROMOTE, 0, keys, ssdOffsets);
    }

    public static PoolPin unpin(long pinId) {
        return new PoolPin(UNPIN, pinId, null, null);
    }

    /** True when a control payload is a pool pin message (its first byte), not a {@link KvControl}. */
    public static boolean isPoolPin(byte[] payload) {
        return payload != null
                && payload.length > 0
                && (payload[0] == PIN || payload[0] == UNPIN || payload[0] == PROMOTE);
    }

    public byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(HEADER + 16 * keys.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(type).put((byte) 1).putShort((short) 0).putInt(keys.length).putLong(pinId);
        for (int i = 0; i < keys.length; i++) b.putLong(keys[i]).putLong(offsets[i]);
        return b.array();
    }

    public static PoolPin decode(byte[] p) {
        if (p == null || p.length < HEADER)
            throw new IllegalArgumentException(
                    "pool pin message of " + (p == null ? 0 : p.length) + " bytes: expected at least " + HEADER);
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN);
        if (b.get(1) != 1) throw new IllegalArgumentException("pool pin version " + b.get(1) + ": expected 1");
        if (b.getShort(2) != 0) throw new IllegalArgumentException("pool pin reserved bytes are not zero");
        int count = b.getInt(4);
        if (count < 0 || count > MAX_KEYS || p.length != HEADER + 16L * count) {
            throw new IllegalArgumentException("pool pin of " + p.length + " bytes says " + count + " blocks");
        }
        long[] keys = new long[count], offsets = new long[count];
        for (int i = 0; i < count; i++) {
            keys[i] = b.getLong(HEADER + 16 * i);
            offsets[i] = b.getLong(HEADER + 16 * i + 8);
        }
        return new PoolPin(b.get(0), b.getLong(8), keys, offsets);
    }
}
