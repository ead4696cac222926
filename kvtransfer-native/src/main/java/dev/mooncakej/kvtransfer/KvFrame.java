package dev.mooncakej.kvtransfer;

/**
 * The TCP wire format of KV transfer, little endian.
 *
 * <pre>
 * header (32 bytes): u32 magic "MKV1" | u32 type | u64 requestId | u32 blockIndex | u32 layer | u64 length
 * DATA   (type 1):   header, then {@code length} bytes: one layer of one KV block, written into the
 *                    receiver's reserved block {@code blockIndex} of that request
 * COMMIT (type 2):   header with length = tokens now complete; the receiver answers one status byte
 * status:            0 OK, 1 unknown request, 2 rejected (bad block, layer or length)
 * </pre>
 * Before any frame the receiver challenges the sender ({@link PeerAuth}: 32 random bytes, answered with
 * their HMAC-SHA256 under the cluster secret). A wrong answer, or a malformed frame (bad magic, type,
 * or a target the receiver refuses), closes that connection only.
 */
public final class KvFrame {
    public static final int MAGIC = 0x3156_4B4D; // "MKV1" read as little-endian u32
    public static final int HEADER_BYTES = 32;
    public static final int TYPE_DATA = 1;
    public static final int TYPE_COMMIT = 2;
    public static final byte OK = 0;
    public static final byte UNKNOWN_REQUEST = 1;
    public static final byte REJECTED = 2;

    private KvFrame() {}
}
