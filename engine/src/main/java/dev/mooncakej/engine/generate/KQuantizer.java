package dev.mooncakej.engine.generate;

import java.nio.ByteBuffer;

/**
 * Writes ggml's K-quant blocks (super-blocks of 256 values) in their exact layout. The quantization
 * itself is a plain min/max fit per sub-block, not ggml's iterative search: any valid block is read
 * the same by every reader, which is what the generated models need (the engine and llama.cpp must
 * agree on what a file holds, not on how it was made).
 */
final class KQuantizer {
    private KQuantizer() {}

    private static int clamp(int v, int lo, int hi) {
        return Math.max(lo, Math.min(hi, v));
    }

    /** Q4_K (bits 4) or Q5_K (bits 5): 8 sub-blocks of 32, each {@code x ~ d*sc*q - dmin*m}. */
    static void encodeQ45K(float[] x, int bits, ByteBuffer out) {
        int levels = (1 << bits) - 1;
        for (int b = 0; b < x.length / 256; b++) {
            int base = b * 256;
            float[] scale = new float[8], min = new float[8];
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 8; j++) {
                float lo = 0, hi = 0; // the min is stored negated and never positive: x >= -m
                for (int l = 0; l < 32; l++) {
                    lo = Math.min(lo, x[base + 32 * j + l]);
                    hi = Math.max(hi, x[base + 32 * j + l]);
                }
                scale[j] = (hi - lo) / levels;
                min[j] = -lo;
                maxScale = Math.max(maxScale, scale[j]);
                maxMin = Math.max(maxMin, min[j]);
            }
            float d = Float.float16ToFloat(Float.floatToFloat16(maxScale / 63));
            float dmin = Float.float16ToFloat(Float.floatToFloat16(maxMin / 63));
            int[] ls = new int[8], lm = new int[8];
            for (int j = 0; j < 8; j++) {
                ls[j] = d > 0 ? clamp(Math.round(scale[j] / d), 0, 63) : 0;
                lm[j] = dmin > 0 ? clamp(Math.round(min[j] / dmin), 0, 63) : 0;
            }
            int[] q = new int[256];
            for (int j = 0; j < 8; j++) {
                float sd = d * ls[j], sm = dmin * lm[j];
                for (int l = 0; l < 32; l++)
                    q[32 * j + l] = sd > 0 ? clamp(Math.round((x[base + 32 * j + l] + sm) / sd), 0, levels) : 0;
            }
            out.putShort(Float.floatToFloat16(d)).putShort(Float.floatToFloat16(dmin));
            byte[] sc = new byte[12];
            for (int j = 0; j < 8; j++) {
                if (j < 4) {
                    sc[j] = (byte) ls[j];
                    sc[j + 4] = (byte) lm[j];
                } else {
                    sc[j + 4] = (byte) ((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
                    sc[j - 4] |= (byte) ((ls[j] >> 4) << 6);
                    sc[j] |= (byte) ((lm[j] >> 4) << 6);
                }
            }
            out.put(sc);
            if (bits == 5) {
                byte[] qh = new byte[32];
                for (int n = 0, m1 = 1, m2 = 2; n < 256; n += 64, m1 <<= 2, m2 <<= 2) {
                    for (int l = 0; l < 32; l++) {
                        if (q[n + l] > 15) {
                            q[n + l] -= 16;
                            qh[l] |= (byte) m1;
                        }
                        if (q[n + l + 32] > 15) {
                            q[n + l + 32] -= 16;
                            qh[l] |= (byte) m2;
                        }
                    }
                }
                out.put(qh);
            }
            for (int n = 0; n < 256; n += 64)
                for (int l = 0; l < 32; l++) out.put((byte) (q[n + l] | (q[n + l + 32] << 4)));
        }
    }

    /** Q6_K: 16 sub-blocks of 16, each {@code x ~ d*sc*(q - 32)} with an int8 scale. */
    static void encodeQ6K(float[] x, ByteBuffer out) {
        for (int b = 0; b < x.length / 256; b++) {
            int base = b * 256;
            float[] scale = new float[16];
            float maxAbs = 0;
            for (int j = 0; j < 16; j++) {
                float amax = 0;
                for (int l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[base + 16 * j + l]));
                scale[j] = amax / 31;
                maxAbs = Math.max(maxAbs, scale[j]);
            }
            float d = Float.float16ToFloat(Float.floatToFloat16(maxAbs / 127));
            byte[] sc = new byte[16];
            int[] q = new int[256];
            for (int j = 0; j < 16; j++) {
                sc[j] = (byte) (d > 0 ? clamp(Math.round(scale[j] / d), -128, 127) : 0);
                float s = d * sc[j];
                for (int l = 0; l < 16; l++)
                    q[16 * j + l] = s != 0 ? clamp(Math.round(x[base + 16 * j + l] / s), -32, 31) + 32 : 32;
            }
            byte[] ql = new byte[128], qh = new byte[64];
            for (int n = 0; n < 2; n++) {
                int j = 128 * n;
                for (int l = 0; l < 32; l++) {
                    ql[64 * n + l] = (byte) ((q[j + l] & 0xF) | ((q[j + l + 64] & 0xF) << 4));
                    ql[64 * n + l + 32] = (byte) ((q[j + l + 32] & 0xF) | ((q[j + l + 96] & 0xF) << 4));
                    qh[32 * n + l] = (byte) ((q[j + l] >> 4)
                            | ((q[j + l + 32] >> 4) << 2)
                            | ((q[j + l + 64] >> 4) << 4)
                            | ((q[j + l + 96] >> 4) << 6));
                }
            }
            out.put(ql).put(qh).put(sc).putShort(Float.floatToFloat16(d));
        }
    }

    /** Q2_K: 16 sub-blocks of 16, each {@code x ~ d*sc*q - dmin*m} with 4-bit sc and m, q in 0..3. */
    static void encodeQ2K(float[] x, ByteBuffer out) {
        for (int b = 0; b < x.length / 256; b++) {
            int base = b * 256;
            float[] scale = new float[16], min = new float[16];
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < 16; j++) {
                float lo = 0, hi = 0;
                for (int l = 0; l < 16; l++) {
                    lo = Math.min(lo, x[base + 16 * j + l]);
                    hi = Math.max(hi, x[base + 16 * j + l]);
                }
                scale[j] = (hi - lo) / 3;
                min[j] = -lo;
                maxScale = Math.max(maxScale, scale[j]);
                maxMin = Math.max(maxMin, min[j]);
            }
            float d = Float.float16ToFloat(Float.floatToFloat16(maxScale / 15));
            float dmin = Float.float16ToFloat(Float.floatToFloat16(maxMin / 15));
            byte[] sc = new byte[16];
            int[] q = new int[256];
            for (int j = 0; j < 16; j++) {
                int ls = d > 0 ? clamp(Math.round(scale[j] / d), 0, 15) : 0;
                int lm = dmin > 0 ? clamp(Math.round(min[j] / dmin), 0, 15) : 0;
                sc[j] = (byte) (ls | (lm << 4));
                float sd = d * ls, sm = dmin * lm;
                for (int l = 0; l < 16; l++)
                    q[16 * j + l] = sd > 0 ? clamp(Math.round((x[base + 16 * j + l] + sm) / sd), 0, 3) : 0;
            }
            byte[] qs = new byte[64];
            for (int v = 0; v < 256; v++) qs[32 * (v / 128) + v % 32] |= (byte) (q[v] << (2 * ((v % 128) / 32)));
            out.put(sc).put(qs).putShort(Float.floatToFloat16(d)).putShort(Float.floatToFloat16(dmin));
        }
    }

    /** Q3_K: 16 sub-blocks of 16, each {@code x ~ d*(sc-32)*q} with a 6-bit sc and q in -4..3. */
    static void encodeQ3K(float[] x, ByteBuffer out) {
        for (int b = 0; b < x.length / 256; b++) {
            int base = b * 256;
            float[] scale = new float[16];
            float maxScale = 0;
            for (int j = 0; j < 16; j++) {
                float amax = 0;
                for (int l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[base + 16 * j + l]));
                scale[j] = amax / 4;
                maxScale = Math.max(maxScale, scale[j]);
            }
            float d = Float.float16ToFloat(Float.floatToFloat16(maxScale / 31));
            int[] ls = new int[16], u = new int[256];
            for (int j = 0; j < 16; j++) {
                ls[j] = d > 0 ? clamp(Math.round(scale[j] / d), -32, 31) : 0;
                float s = d * ls[j];
                for (int l = 0; l < 16; l++)
                    u[16 * j + l] = (s != 0 ? clamp(Math.round(x[base + 16 * j + l] / s), -4, 3) : 0) + 4;
            }
            byte[] hmask = new byte[32], qs = new byte[64], sc = new byte[12];
            for (int v = 0; v < 256; v++) {
                int n = v / 128, j = (v % 128) / 32, l = v % 32;
                qs[32 * n + l] |= (byte) ((u[v] & 3) << (2 * j));
                if (u[v] >= 4) hmask[l] |= (byte) (1 << (4 * n + j));
            }
            for (int i = 0; i < 16; i++) {
                int s6 = ls[i] + 32;
                if (i < 8) sc[i] |= (byte) (s6 & 0xF);
                else sc[i - 8] |= (byte) ((s6 & 0xF) << 4);
                sc[8 + (i & 3)] |= (byte) (((s6 >> 4) & 3) << (2 * (i >> 2)));
            }
            out.put(hmask).put(qs).put(sc).putShort(Float.floatToFloat16(d));
        }
    }
}
