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
 *  Q2_K  84 B: 16 B (4-bit scale | 4-bit min << 4), one per 16 values | 64 B of 2-bit q | f16 d | f16 dmin
 *              x = d*sc * q - dmin*m; each 32 bytes of q hold 128 values, four 2-bit planes of 32
 *  Q3_K 110 B: 32 B high bits (hmask) | 64 B low two bits | 12 B of sixteen 6-bit scales | f16 d
 *              x = d * (sc - 32) * (q - (high bit set ? 0 : 4)), q the low two bits
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
    static int scaleMin(MemorySegment m, long scales, int j) {
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

    static void dequantizeQ2K(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 84L * b;
            long scales = bo, qs = bo + 16;
            float d = f16(data, bo + 80), dmin = f16(data, bo + 82);
            int y = outOffset + 256 * b, is = 0;
            for (int n = 0; n < 2; n++) {
                long q = qs + 32L * n;
                for (int j = 0, shift = 0; j < 4; j++, shift += 2) {
                    int sc = u8(data, scales + is++);
                    float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) out[y++] = dl * ((u8(data, q + l) >> shift) & 3) - ml;
                    sc = u8(data, scales + is++);
                    dl = d * (sc & 0xF);
                    ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) out[y++] = dl * ((u8(data, q + l + 16) >> shift) & 3) - ml;
                }
            }
        }
    }

    /** Q3_K's sixteen 6-bit scales, unpacked from 12 bytes as ggml does (low 4 bits, then 2 high bits). */
    static int q3kScale(MemorySegment m, long scales, int i) {
        int low = i < 8 ? u8(m, scales + i) & 0xF : u8(m, scales + i - 8) >> 4;
        int high = (u8(m, scales + 8 + (i & 3)) >> (2 * (i >> 2))) & 3;
        return low | (high << 4);
    }

    static void dequantizeQ3K(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 110L * b;
            long hm = bo, qs = bo + 32, scales = bo + 96;
            float dAll = f16(data, bo + 108);
            int y = outOffset + 256 * b, is = 0, m = 1;
            for (int n = 0; n < 2; n++) {
                long q = qs + 32L * n;
                for (int j = 0, shift = 0; j < 4; j++, shift += 2, m <<= 1) {
                    float dl = dAll * (q3kScale(data, scales, is++) - 32);
                    for (int l = 0; l < 16; l++)
                        out[y++] = dl * (((u8(data, q + l) >> shift) & 3) - ((u8(data, hm + l) & m) != 0 ? 0 : 4));
                    dl = dAll * (q3kScale(data, scales, is++) - 32);
                    for (int l = 0; l < 16; l++)
                        out[y++] = dl
                                * (((u8(data, q + l + 16) >> shift) & 3) - ((u8(data, hm + l + 16) & m) != 0 ? 0 : 4));
                }
            }
        }
    }
}
