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

    private static float roundBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        bits = (bits + (0x7fff + ((bits >>> 16) & 1))) & 0xffff0000;
        return Float.intBitsToFloat(bits);
    }
}
