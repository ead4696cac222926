package dev.mooncakej.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Dequantization of ggml's other 32-value blocks, read in place from the mapped file as ggml's
 * reference {@code dequantize_row_*} reads them:
 *
 * <pre>
 *  Q4_1 20 B: f16 d | f16 m | 16 B nibbles (low = values 0..15, high = 16..31); x = q*d + m
 *  Q5_0 22 B: f16 d | u32 qh (bit j = fifth bit of value j) | 16 B nibbles; x = (q - 16)*d
 *  Q5_1 24 B: f16 d | f16 m | u32 qh | 16 B nibbles; x = q*d + m
 * </pre>
 */
final class LegacyQuants {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private LegacyQuants() {}

    private static int u8(MemorySegment m, long at) {
        return m.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }

    private static float f16(MemorySegment m, long at) {
        return Float.float16ToFloat(m.get(I16, at));
    }

    static void dequantizeQ41(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 32; b++) {
            long bo = off + 20L * b;
            float d = f16(data, bo), m = f16(data, bo + 2);
            int y = outOffset + 32 * b;
            for (int j = 0; j < 16; j++) {
                int q = u8(data, bo + 4 + j);
                out[y + j] = (q & 0xF) * d + m;
                out[y + j + 16] = (q >> 4) * d + m;
            }
        }
    }

    static void dequantizeQ50(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 32; b++) {
            long bo = off + 22L * b;
            float d = f16(data, bo);
            int qh = data.get(I32, bo + 2);
            int y = outOffset + 32 * b;
            for (int j = 0; j < 16; j++) {
                int q = u8(data, bo + 6 + j);
                int h0 = ((qh >>> j) << 4) & 0x10, h1 = (qh >>> (j + 12)) & 0x10;
                out[y + j] = (((q & 0xF) | h0) - 16) * d;
                out[y + j + 16] = (((q >> 4) | h1) - 16) * d;
            }
        }
    }

    static void dequantizeQ51(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 32; b++) {
            long bo = off + 24L * b;
            float d = f16(data, bo), m = f16(data, bo + 2);
            int qh = data.get(I32, bo + 4);
            int y = outOffset + 32 * b;
            for (int j = 0; j < 16; j++) {
                int q = u8(data, bo + 8 + j);
                int h0 = ((qh >>> j) << 4) & 0x10, h1 = (qh >>> (j + 12)) & 0x10;
                out[y + j] = ((q & 0xF) | h0) * d + m;
                out[y + j + 16] = ((q >> 4) | h1) * d + m;
            }
        }
    }
}
