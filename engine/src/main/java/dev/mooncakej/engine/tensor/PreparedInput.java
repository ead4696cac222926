package dev.mooncakej.engine.tensor;

/**
 * Activation rows converted the way llama.cpp's CPU backend converts them for a weight type, so
 * results agree closely with it (preallocated, reused):
 * <ul>
 *   <li>{@code F32}: the activations;</li>
 *   <li>{@code F16} / {@code BF16}: the activations rounded to that type;</li>
 *   <li>{@code Q8_0}: per block of 32, quantized to {@code q = rint(x * 127/amax)} with scale
 *       {@code d = F16(amax/127)}, stored dequantized as {@code q * d};</li>
 *   <li>{@code Q8_K}: per block of 256, for K-quant weights (see {@link #quantizeQ8K}).</li>
 * </ul>
 * Every kernel then takes the same float dot product of a dequantized weight row with these values.
 */
public final class PreparedInput {
    public enum Kind {
        F32,
        F16,
        BF16,
        Q8_0,
        Q8_K
    }

    final float[] values;
    private Kind kind;
    private float[] source;
    private int rows;
    private int cols;

    public PreparedInput(int maxRows, int maxCols) {
        this.values = new float[maxRows * maxCols];
    }

    /** Prepares {@code rows x cols} activations of {@code x} for kernels of {@code kind}. */
    public PreparedInput prepare(Kind kind, float[] x, int rows, int cols) {
        this.kind = kind;
        this.source = x;
        this.rows = rows;
        this.cols = cols;
        int n = rows * cols;
        switch (kind) {
            case F32 -> System.arraycopy(x, 0, values, 0, n);
            case F16 -> {
                for (int i = 0; i < n; i++) values[i] = Float.float16ToFloat(Float.floatToFloat16(x[i]));
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) values[i] = roundToBf16(x[i]);
            }
            case Q8_0 -> quantizeQ8(x, n);
            case Q8_K -> quantizeQ8K(x, n);
        }
        return this;
    }

    /** True when this already holds {@code x} prepared for {@code kind}. */
    public boolean holds(Kind kind, float[] x, int rows, int cols) {
        return this.kind == kind && this.source == x && this.rows == rows && this.cols == cols;
    }

    /** Forgets what is held, after its source changed. */
    public void invalidate() {
        this.source = null;
    }

    private void quantizeQ8(float[] x, int n) {
        for (int b = 0, blocks = n / 32; b < blocks; b++) {
            int base = b * 32;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[base + j]));
            float id = amax != 0 ? 127f / amax : 0f;
            float d = Float.float16ToFloat(Float.floatToFloat16(amax / 127f));
            for (int j = 0; j < 32; j++) values[base + j] = (float) Math.rint(x[base + j] * id) * d;
        }
    }

    /**
     * Q8_K, as ggml's {@code quantize_row_q8_K}: per block of 256, the value of largest magnitude
     * {@code max} gives {@code iscale = -127/max}, {@code q = min(127, rint(iscale * x))} and the float
     * scale {@code d = 1/iscale}; stored dequantized as {@code q * d}.
     */
    private void quantizeQ8K(float[] x, int n) {
        for (int b = 0, blocks = n / 256; b < blocks; b++) {
            int base = b * 256;
            float amax = 0, max = 0;
            for (int j = 0; j < 256; j++) {
                float ax = Math.abs(x[base + j]);
                if (ax > amax) {
                    amax = ax;
                    max = x[base + j];
                }
            }
            if (amax == 0) {
                for (int j = 0; j < 256; j++) values[base + j] = 0;
                continue;
            }
            float iscale = -127f / max, d = 1 / iscale;
            for (int j = 0; j < 256; j++) values[base + j] = Math.min(127, (int) Math.rint(iscale * x[base + j])) * d;
        }
    }

    static float roundToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return Float.intBitsToFloat((bits | 0x00400000) & 0xffff0000); // NaN
        bits = (bits + (0x7fff + ((bits >>> 16) & 1))) & 0xffff0000;
        return Float.intBitsToFloat(bits);
    }
}
