package dev.mooncakej.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Dequantization of ggml's K-quant blocks (super-blocks of 256 values), read in place from the mapped
 * file, with the same float operations in the same order as ggml's reference {@code dequantize_row_*}
 * so a row's values are bit for bit llama.cpp's:
 *
 * <pre>
 *  Q4_K 144 B: f16 d | f16 dmin | 12 B of 6-bit (scale, min) for 8 sub-blocks of 32 | 128 B of nibbles
 *              x = d*sc * q - dmin*m, q in 0..15; nibbles of 32 bytes: low = values 0..31, high = 32..63
 *  Q5_K 176 B: as Q4_K, then 32 B of fifth bits (qh) before the 128 B of nibbles; q in 0..31
 *  Q6_K 210 B: 128 B low nibbles (ql) | 64 B high two bits (qh) | 16 int8 scales, one per 16 values | f16 d
 *              x = d * sc * (q - 32), q in 0..63
 * </pre>
 */
final class KQuants {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private KQuants() {}

    private static int u8(MemorySegment m, long at) {
        return m.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }

    private static float f16(MemorySegment m, long at) {
        return Float.float16ToFloat(m.get(I16, at));
    }

    /** Sub-block {@code j}'s 6-bit scale (low 8 bits of the result) and min (bits 8..15) of a Q4_K/Q5_K block. */
    private static int scaleMin(MemorySegment m, long scales, int j) {
        int sc, mn;
        if (j < 4) {
            sc = u8(m, scales + j) & 63;
            mn = u8(m, scales + j + 4) & 63;
        } else {
            sc = (u8(m, scales + j + 4) & 0xF) | ((u8(m, scales + j - 4) >> 6) << 4);
            mn = (u8(m, scales + j + 4) >> 4) | ((u8(m, scales + j) >> 6) << 4);
        }
        return sc | (mn << 8);
    }

    static void dequantizeQ4K(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 144L * b;
            float d = f16(data, bo), dmin = f16(data, bo + 2);
            long scales = bo + 4, qs = bo + 16;
            int y = outOffset + 256 * b;
            for (int j = 0; j < 4; j++) {
                int a = scaleMin(data, scales, 2 * j), c = scaleMin(data, scales, 2 * j + 1);
                float d1 = d * (a & 0xFF), m1 = dmin * (a >> 8);
                float d2 = d * (c & 0xFF), m2 = dmin * (c >> 8);
                for (int l = 0; l < 32; l++) {
                    int q = u8(data, qs + 32L * j + l);
                    out[y + 64 * j + l] = d1 * (q & 0xF) - m1;
                    out[y + 64 * j + 32 + l] = d2 * (q >> 4) - m2;
                }
            }
        }
    }

    static void dequantizeQ5K(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 176L * b;
            float d = f16(data, bo), dmin = f16(data, bo + 2);
            long scales = bo + 4, qh = bo + 16, qs = bo + 48;
            int y = outOffset + 256 * b;
            for (int j = 0, u1 = 1, u2 = 2; j < 4; j++, u1 <<= 2, u2 <<= 2) {
                int a = scaleMin(data, scales, 2 * j), c = scaleMin(data, scales, 2 * j + 1);
                float d1 = d * (a & 0xFF), m1 = dmin * (a >> 8);
                float d2 = d * (c & 0xFF), m2 = dmin * (c >> 8);
                for (int l = 0; l < 32; l++) {
                    int q = u8(data, qs + 32L * j + l), h = u8(data, qh + l);
                    out[y + 64 * j + l] = d1 * ((q & 0xF) + ((h & u1) != 0 ? 16 : 0)) - m1;
                    out[y + 64 * j + 32 + l] = d2 * ((q >> 4) + ((h & u2) != 0 ? 16 : 0)) - m2;
                }
            }
        }
    }

    static void dequantizeQ6K(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 210L * b;
            float d = f16(data, bo + 208);
            for (int n = 0; n < 2; n++) {
                long ql = bo + 64L * n, qh = bo + 128 + 32L * n, sc = bo + 192 + 8L * n;
                int y = outOffset + 256 * b + 128 * n;
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int lo0 = u8(data, ql + l), lo1 = u8(data, ql + l + 32), h = u8(data, qh + l);
                    int q1 = ((lo0 & 0xF) | ((h & 3) << 4)) - 32;
                    int q2 = ((lo1 & 0xF) | (((h >> 2) & 3) << 4)) - 32;
                    int q3 = ((lo0 >> 4) | (((h >> 4) & 3) << 4)) - 32;
                    int q4 = ((lo1 >> 4) | (((h >> 6) & 3) << 4)) - 32;
                    out[y + l] = d * data.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                    out[y + l + 32] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                    out[y + l + 64] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                    out[y + l + 96] = d * data.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
                }
            }
        }
    }
}
