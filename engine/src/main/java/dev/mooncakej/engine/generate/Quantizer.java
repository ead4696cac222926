package dev.mooncakej.engine.generate;

import dev.mooncakej.engine.gguf.GgmlType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Encodes float weights as GGML types, the way ggml's reference quantizers do. */
public final class Quantizer {
    private Quantizer() {}

    public static byte[] encode(float[] x, GgmlType type) {
        ByteBuffer out = ByteBuffer.allocate((int) type.byteSize(x.length)).order(ByteOrder.LITTLE_ENDIAN);
        switch (type) {
            case F32 -> {
                for (float v : x) out.putFloat(v);
            }
            case F16 -> {
                for (float v : x) out.putShort(Float.floatToFloat16(v));
            }
            case BF16 -> {
                for (float v : x) out.putShort((short) (Float.floatToRawIntBits(roundBf16(v)) >>> 16));
            }
            case Q8_0 -> {
                for (int b = 0; b < x.length / 32; b++) {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
                    float d = amax / 127f;
                    float id = d != 0 ? 1f / d : 0f;
                    out.putShort(Float.floatToFloat16(d));
                    for (int j = 0; j < 32; j++) out.put((byte) Math.round(x[b * 32 + j] * id));
                }
            }
            case Q4_1 -> encodeQ41(x, out);
            case Q5_0 -> encodeQ5(x, false, out);
            case Q5_1 -> encodeQ5(x, true, out);
            case Q2_K -> KQuantizer.encodeQ2K(x, out);
            case Q3_K -> KQuantizer.encodeQ3K(x, out);
            case Q4_K -> KQuantizer.encodeQ45K(x, 4, out);
            case Q5_K -> KQuantizer.encodeQ45K(x, 5, out);
            case Q6_K -> KQuantizer.encodeQ6K(x, out);
            case Q4_0 -> {
                for (int b = 0; b < x.length / 32; b++) {
                    float amax = 0, max = 0;
                    for (int j = 0; j < 32; j++) {
                        float v = x[b * 32 + j];
                        if (Math.abs(v) > amax) {
                            amax = Math.abs(v);
                            max = v;
                        }
                    }
                    float d = max / -8f;
                    float id = d != 0 ? 1f / d : 0f;
                    out.putShort(Float.floatToFloat16(d));
                    for (int j = 0; j < 16; j++) {
                        int q0 = Math.min(15, (int) (byte) (x[b * 32 + j] * id + 8.5f));
                        int q1 = Math.min(15, (int) (byte) (x[b * 32 + 16 + j] * id + 8.5f));
                        out.put((byte) (q0 | (q1 << 4)));
                    }
                }
            }
        }
        return out.array();
    }

    /** ggml's {@code quantize_row_q4_1_ref}: per block of 32, {@code x ~ q*d + min}, q in 0..15. */
    private static void encodeQ41(float[] x, ByteBuffer out) {
        for (int b = 0; b < x.length / 32; b++) {
            float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
            for (int j = 0; j < 32; j++) {
                min = Math.min(min, x[b * 32 + j]);
                max = Math.max(max, x[b * 32 + j]);
            }
            float d = (max - min) / 15f;
            float id = d != 0 ? 1f / d : 0f;
            out.putShort(Float.floatToFloat16(d)).putShort(Float.floatToFloat16(min));
            for (int j = 0; j < 16; j++) {
                int q0 = Math.min(15, (int) (byte) ((x[b * 32 + j] - min) * id + 0.5f));
                int q1 = Math.min(15, (int) (byte) ((x[b * 32 + 16 + j] - min) * id + 0.5f));
                out.put((byte) (q0 | (q1 << 4)));
            }
        }
    }

    /**
     * ggml's {@code quantize_row_q5_0_ref} ({@code x ~ (q - 16)*d} with d from the value of largest
     * magnitude) or {@code q5_1} ({@code x ~ q*d + min}); the fifth bits go in a little-endian u32.
     */
    private static void encodeQ5(float[] x, boolean withMin, ByteBuffer out) {
        for (int b = 0; b < x.length / 32; b++) {
            int base = b * 32;
            float d, min = 0, offset;
            if (withMin) {
                min = Float.MAX_VALUE;
                float max = -Float.MAX_VALUE;
                for (int j = 0; j < 32; j++) {
                    min = Math.min(min, x[base + j]);
                    max = Math.max(max, x[base + j]);
                }
                d = (max - min) / 31f;
                offset = 0.5f;
            } else {
                float amax = 0, max = 0;
                for (int j = 0; j < 32; j++) {
                    if (Math.abs(x[base + j]) > amax) {
                        amax = Math.abs(x[base + j]);
                        max = x[base + j];
                    }
                }
                d = max / -16f;
                offset = 16.5f;
            }
            float id = d != 0 ? 1f / d : 0f;
            int[] q = new int[32];
            for (int j = 0; j < 32; j++) q[j] = Math.min(31, (int) (byte) ((x[base + j] - min) * id + offset));
            int qh = 0;
            for (int j = 0; j < 16; j++) {
                qh |= ((q[j] & 0x10) >> 4) << j;
                qh |= ((q[j + 16] & 0x10) >> 4) << (j + 16);
            }
            out.putShort(Float.floatToFloat16(d));
            if (withMin) out.putShort(Float.floatToFloat16(min));
            out.putInt(qh);
            for (int j = 0; j < 16; j++) out.put((byte) ((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4)));
        }
    }

    private static float roundBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        bits = (bits + (0x7fff + ((bits >>> 16) & 1))) & 0xffff0000;
        return Float.intBitsToFloat(bits);
    }
}
