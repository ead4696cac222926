package dev.mooncakej.engine.gguf;

import java.util.Arrays;

/**
 * Tensor element types this engine reads, with their GGML ids and block geometry.
 *
 * <pre>
 *  type  id  block  bytes/block  layout of one block
 *  F32    0      1            4  float32
 *  F16    1      1            2  IEEE half
 *  Q4_0   2     32           18  f16 d | 16 bytes: low nibbles = elements 0..15, high nibbles = 16..31; x = (q - 8) * d
 *  Q4_1   3     32           20  f16 d, f16 m | 16 bytes of nibbles as Q4_0; x = q * d + m
 *  Q5_0   6     32           22  f16 d | u32 fifth bits | 16 bytes of nibbles; x = (q - 16) * d
 *  Q5_1   7     32           24  f16 d, f16 m | u32 fifth bits | 16 bytes of nibbles; x = q * d + m
 *  Q8_0   8     32           34  f16 d | 32 x int8; x = q * d
 *  Q2_K  10    256           84  16 x (4-bit scale, 4-bit min) | 64 B of 2-bit q | f16 d, dmin; x = d*sc*q - dmin*m
 *  Q3_K  11    256          110  32 B high bits | 64 B low 2 bits | 12 B of 6-bit scales | f16 d; x = d*(sc-32)*(q-4)
 *  Q4_K  12    256          144  f16 d, dmin | 8 x 6-bit (scale, min) | 256 x 4 bits; x = d*sc*q - dmin*m
 *  Q5_K  13    256          176  as Q4_K with a fifth bit per value (32 bytes before the nibbles)
 *  Q6_K  14    256          210  128 B low nibbles | 64 B high 2 bits | 16 x int8 scale | f16 d; x = d*sc*(q-32)
 *  BF16  30      1            2  bfloat16 (upper half of a float32)
 * </pre>
 */
public enum GgmlType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),
    Q4_1(3, 32, 20),
    Q5_0(6, 32, 22),
    Q5_1(7, 32, 24),
    Q8_0(8, 32, 34),
    Q2_K(10, 256, 84),
    Q3_K(11, 256, 110),
    Q4_K(12, 256, 144),
    Q5_K(13, 256, 176),
    Q6_K(14, 256, 210),
    BF16(30, 1, 2);

    private final int id;
    private final int blockSize;
    private final int bytesPerBlock;

    GgmlType(int id, int blockSize, int bytesPerBlock) {
        this.id = id;
        this.blockSize = blockSize;
        this.bytesPerBlock = bytesPerBlock;
    }

    public int id() {
        return id;
    }

    public int blockSize() {
        return blockSize;
    }

    public int bytesPerBlock() {
        return bytesPerBlock;
    }

    /** Bytes taken by {@code elements} values; elements must be a multiple of the block size. */
    public long byteSize(long elements) {
        return elements / blockSize * bytesPerBlock;
    }

    /** The type with this GGML id, or null when this engine does not support it. */
    public static GgmlType byId(int id) {
        for (GgmlType t : values()) {
            if (t.id == id) return t;
        }
        return null;
    }

    /** The types this engine reads, for error messages. */
    public static String supported() {
        return Arrays.toString(values());
    }

    /** Names of GGML types this engine does not read, for error messages. */
    static String nameOfUnsupported(int id) {
        return switch (id) {
            case 9 -> "Q8_1";
            case 15 -> "Q8_K";
            case 16 -> "IQ2_XXS";
            case 17 -> "IQ2_XS";
            case 18 -> "IQ3_XXS";
            case 19 -> "IQ1_S";
            case 20 -> "IQ4_NL";
            case 21 -> "IQ3_S";
            case 22 -> "IQ2_S";
            case 23 -> "IQ4_XS";
            case 24 -> "I8";
            case 25 -> "I16";
            case 26 -> "I32";
            case 27 -> "I64";
            case 28 -> "F64";
            case 29 -> "IQ1_M";
            case 34 -> "TQ1_0";
            case 35 -> "TQ2_0";
            default -> "unknown type id " + id;
        };
    }
}
