package dev.mooncakej.engine.tensor;

import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufTensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * A weight matrix {@code W[rows][cols]} read in place from the mapped model file, and the dot-product
 * kernels for each weight type (Vector API).
 *
 * <p>Activations are prepared the way llama.cpp's CPU backend prepares them, so results agree closely:
 * F32 weights use F32 activations; F16 and BF16 weights use activations rounded to that type; Q8_0
 * and Q4_0 weights use activations quantized to Q8_0 blocks (32 values, scale {@code amax/127} stored
 * as F16, values {@code rint(x*127/amax)}), and so do Q4_1, Q5_0 and Q5_1 (dequantized a row at a time
 * by {@link LegacyQuants}; llama.cpp's Q8_1 for Q4_1/Q5_1 has the same values, but it adds the
 * blocks' minimum terms with the block sums rounded to F16, which this does not copy); K-quant weights
 * (Q2_K to Q6_K, dequantized a row at a time by {@link KQuants}) activations quantized to Q8_K blocks.
 * See {@link PreparedInput}.
 */
public final class WeightMatrix {
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final VectorSpecies<Float> F =
            FloatVector.SPECIES_PREFERRED.length() > 16 ? FloatVector.SPECIES_512 : FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    /** Byte species with as many lanes as {@link #F}, for int8 -> float conversion. */
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(L * 8));

    private static final VectorSpecies<Byte> B16 = ByteVector.SPECIES_128;

    private final String name;
    private final GgmlType type;
    private final MemorySegment data;
    private final int rows;
    private final int cols;
    private final long rowBytes;

    public WeightMatrix(GgufTensor t) {
        this(t.name(), t.type(), t.data(), t.rows(), t.cols());
    }

    public WeightMatrix(String name, GgmlType type, MemorySegment data, int rows, int cols) {
        this.name = name;
        this.type = type;
        this.data = data;
        this.rows = rows;
        this.cols = cols;
        this.rowBytes = type.byteSize(cols);
        if (data.byteSize() != rowBytes * rows) {
            throw new IllegalArgumentException(
                    name + ": expected " + rowBytes * rows + " bytes, found " + data.byteSize());
        }
    }

    public String name() {
        return name;
    }

    public GgmlType type() {
        return type;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    public MemorySegment data() {
        return data;
    }

    /** The input form this matrix's kernel consumes. */
    public PreparedInput.Kind inputKind() {
        return switch (type) {
            case F32 -> PreparedInput.Kind.F32;
            case F16 -> PreparedInput.Kind.F16;
            case BF16 -> PreparedInput.Kind.BF16;
            case Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 -> PreparedInput.Kind.Q8_0;
            case Q2_K, Q3_K, Q4_K, Q5_K, Q6_K -> PreparedInput.Kind.Q8_K;
        };
    }

    /**
     * Dot product of weight row {@code o} with prepared input row {@code r}, dequantizing on the fly.
     * Bit for bit the same as {@link #dequantizeRow} followed by {@link #dot(float[], int, float[], int, int)}
     * (the batched path), so a row's result does not depend on the batch it is in. F16/BF16 rows are
     * only computed through the batched path.
     */
    public float dot(int o, PreparedInput in, int r) {
        long off = o * rowBytes;
        int xo = r * cols;
        return switch (type) {
            case F32 -> dotF32(off, in.values, xo);
            case Q8_0 -> dotQ8(off, in.values, xo);
            case Q4_0 -> dotQ4(off, in.values, xo);
            case Q4_K -> KQuantsVector.dotQ4K(data, off, cols, in.values, xo);
            case Q6_K -> KQuantsVector.dotQ6K(data, off, cols, in.values, xo);
            default -> throw new IllegalStateException("use dequantizeRow + dot for " + type);
        };
    }

    /** True when {@link #dot(int, PreparedInput, int)} can compute a row without a dequantized copy. */
    public boolean fusedDot() {
        return type == GgmlType.F32
                || type == GgmlType.Q8_0
                || type == GgmlType.Q4_0
                || type == GgmlType.Q4_K
                || type == GgmlType.Q6_K;
    }

    /**
     * The canonical dot product every kernel reproduces: vector chunks of {@code L} lanes fused
     * multiply-added in index order into two accumulators (even chunks into the first, odd into the
     * second, so two FMA chains run at once), the accumulators added and summed pairwise
     * ({@link LaneMath#sum}), then a scalar tail.
     */
    public static float dot(float[] w, int wo, float[] x, int xo, int n) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int i = 0;
        int upper = F.loopBound(n);
        for (; i + L < upper; i += 2 * L) {
            a0 = FloatVector.fromArray(F, w, wo + i).fma(FloatVector.fromArray(F, x, xo + i), a0);
            a1 = FloatVector.fromArray(F, w, wo + i + L).fma(FloatVector.fromArray(F, x, xo + i + L), a1);
        }
        if (i < upper) {
            a0 = FloatVector.fromArray(F, w, wo + i).fma(FloatVector.fromArray(F, x, xo + i), a0);
            i += L;
        }
        float s = LaneMath.sum(a0.add(a1));
        for (; i < n; i++) s += w[wo + i] * x[xo + i];
        return s;
    }

    /**
     * One dequantized weight row times four input rows (each result exactly {@link #dot}): every weight
     * vector is loaded once and used four times. Kept small: a larger kernel exceeds C2's inlining
     * budget, and a vector operation that is not inlined allocates.
     */
    public static void dot4(float[] w, int wo, float[] x, int x0, int x1, int x2, int x3, int n, float[] out) {
        FloatVector z = FloatVector.zero(F);
        FloatVector a0 = z, a1 = z, a2 = z, a3 = z; // even chunks
        FloatVector b0 = z, b1 = z, b2 = z, b3 = z; // odd chunks
        int i = 0;
        int upper = F.loopBound(n);
        for (; i + L < upper; i += 2 * L) {
            FloatVector u = FloatVector.fromArray(F, w, wo + i);
            a0 = u.fma(FloatVector.fromArray(F, x, x0 + i), a0);
            a1 = u.fma(FloatVector.fromArray(F, x, x1 + i), a1);
            a2 = u.fma(FloatVector.fromArray(F, x, x2 + i), a2);
            a3 = u.fma(FloatVector.fromArray(F, x, x3 + i), a3);
            int j = i + L;
            FloatVector v = FloatVector.fromArray(F, w, wo + j);
            b0 = v.fma(FloatVector.fromArray(F, x, x0 + j), b0);
            b1 = v.fma(FloatVector.fromArray(F, x, x1 + j), b1);
            b2 = v.fma(FloatVector.fromArray(F, x, x2 + j), b2);
            b3 = v.fma(FloatVector.fromArray(F, x, x3 + j), b3);
        }
        if (i < upper) {
            FloatVector u = FloatVector.fromArray(F, w, wo + i);
            a0 = u.fma(FloatVector.fromArray(F, x, x0 + i), a0);
            a1 = u.fma(FloatVector.fromArray(F, x, x1 + i), a1);
            a2 = u.fma(FloatVector.fromArray(F, x, x2 + i), a2);
            a3 = u.fma(FloatVector.fromArray(F, x, x3 + i), a3);
            i += L;
        }
        float s0 = LaneMath.sum(a0.add(b0)), s1 = LaneMath.sum(a1.add(b1));
        float s2 = LaneMath.sum(a2.add(b2)), s3 = LaneMath.sum(a3.add(b3));
        for (; i < n; i++) {
            float wi = w[wo + i];
            s0 += wi * x[x0 + i];
            s1 += wi * x[x1 + i];
            s2 += wi * x[x2 + i];
            s3 += wi * x[x3 + i];
        }
        out[0] = s0;
        out[1] = s1;
        out[2] = s2;
        out[3] = s3;
    }

    /** Dequantizes row {@code o} into {@code out[outOffset ..]} (embedding look-up, batched matmul). */
    public void dequantizeRow(int o, float[] out, int outOffset) {
        // each type in its own small method: one large method here would push the vector code of its
        // callers past C2's inlining budget, and vector operations that are not inlined allocate
        long off = o * rowBytes;
        switch (type) {
            case F32 -> MemorySegment.copy(data, F32, off, out, outOffset, cols);
            case F16 -> dequantizeF16(off, out, outOffset);
            case BF16 -> dequantizeBF16(off, out, outOffset);
            case Q8_0 -> dequantizeQ8(off, out, outOffset);
            case Q4_0 -> dequantizeQ4(off, out, outOffset);
            case Q4_K -> KQuantsVector.dequantizeQ4K(data, off, cols, out, outOffset);
            case Q5_K -> KQuantsVector.dequantizeQ5K(data, off, cols, out, outOffset);
            case Q6_K -> KQuantsVector.dequantizeQ6K(data, off, cols, out, outOffset);
            case Q4_1 -> LegacyQuants.dequantizeQ41(data, off, cols, out, outOffset);
            case Q5_0 -> LegacyQuants.dequantizeQ50(data, off, cols, out, outOffset);
            case Q5_1 -> LegacyQuants.dequantizeQ51(data, off, cols, out, outOffset);
            case Q2_K -> KQuants.dequantizeQ2K(data, off, cols, out, outOffset);
            case Q3_K -> KQuants.dequantizeQ3K(data, off, cols, out, outOffset);
        }
    }

    private void dequantizeF16(long off, float[] out, int outOffset) {
        for (int i = 0; i < cols; i++) out[outOffset + i] = Float.float16ToFloat(data.get(I16, off + 2L * i));
    }

    private void dequantizeBF16(long off, float[] out, int outOffset) {
        for (int i = 0; i < cols; i++) out[outOffset + i] = Float.intBitsToFloat(data.get(I16, off + 2L * i) << 16);
    }

    private void dequantizeQ8(long off, float[] out, int outOffset) {
        for (int b = 0; b < cols / 32; b++) {
            long bo = off + 34L * b;
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, bo)));
            for (int p = 0; p < 32; p += L) {
                ((FloatVector) ByteVector.fromMemorySegment(B, data, bo + 2 + p, ByteOrder.LITTLE_ENDIAN)
                                .convertShape(VectorOperators.B2F, F, 0))
                        .mul(d)
                        .intoArray(out, outOffset + b * 32 + p);
            }
        }
    }

    private void dequantizeQ4(long off, float[] out, int outOffset) {
        for (int b = 0; b < cols / 32; b++) {
            long bo = off + 18L * b;
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, bo)));
            ByteVector q = ByteVector.fromMemorySegment(B16, data, bo + 2, ByteOrder.LITTLE_ENDIAN);
            ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8);
            for (int p = 0; p < 16 / L; p++) {
                ((FloatVector) lo.convertShape(VectorOperators.B2F, F, p))
                        .mul(d)
                        .intoArray(out, outOffset + b * 32 + p * L);
                ((FloatVector) hi.convertShape(VectorOperators.B2F, F, p))
                        .mul(d)
                        .intoArray(out, outOffset + b * 32 + 16 + p * L);
            }
        }
    }

    private float dotF32(long off, float[] x, int xo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int i = 0;
        int upper = F.loopBound(cols);
        for (; i + L < upper; i += 2 * L) {
            a0 = FloatVector.fromMemorySegment(F, data, off + 4L * i, ByteOrder.LITTLE_ENDIAN)
                    .fma(FloatVector.fromArray(F, x, xo + i), a0);
            a1 = FloatVector.fromMemorySegment(F, data, off + 4L * (i + L), ByteOrder.LITTLE_ENDIAN)
                    .fma(FloatVector.fromArray(F, x, xo + i + L), a1);
        }
        if (i < upper) {
            a0 = FloatVector.fromMemorySegment(F, data, off + 4L * i, ByteOrder.LITTLE_ENDIAN)
                    .fma(FloatVector.fromArray(F, x, xo + i), a0);
            i += L;
        }
        float s = LaneMath.sum(a0.add(a1));
        for (; i < cols; i++) s += data.get(F32, off + 4L * i) * x[xo + i];
        return s;
    }

    // Quantized rows: cols is a multiple of 32 and 32 / L is even, so a chunk's parity is (p / L) & 1 inside a block.

    private float dotQ8(long off, float[] x, int xo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int b = 0, blocks = cols >> 5; b < blocks; b++) {
            long bo = off + 34L * b;
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, bo)));
            int xb = xo + (b << 5);
            for (int p = 0; p < 32; p += 2 * L) {
                FloatVector w0 = ((FloatVector)
                                ByteVector.fromMemorySegment(B, data, bo + 2 + p, ByteOrder.LITTLE_ENDIAN)
                                        .convertShape(VectorOperators.B2F, F, 0))
                        .mul(d);
                FloatVector w1 = ((FloatVector)
                                ByteVector.fromMemorySegment(B, data, bo + 2 + p + L, ByteOrder.LITTLE_ENDIAN)
                                        .convertShape(VectorOperators.B2F, F, 0))
                        .mul(d);
                a0 = w0.fma(FloatVector.fromArray(F, x, xb + p), a0);
                a1 = w1.fma(FloatVector.fromArray(F, x, xb + p + L), a1);
            }
        }
        return LaneMath.sum(a0.add(a1));
    }

    private float dotQ4(long off, float[] x, int xo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int loChunks = 16 / L;
        for (int b = 0, blocks = cols >> 5; b < blocks; b++) {
            long bo = off + 18L * b;
            FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, bo)));
            ByteVector q = ByteVector.fromMemorySegment(B16, data, bo + 2, ByteOrder.LITTLE_ENDIAN);
            ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8);
            int xb = xo + (b << 5);
            for (int c = 0; c < loChunks; c++) { // chunks in index order: low nibbles (0..15), then high (16..31)
                FloatVector w = ((FloatVector) lo.convertShape(VectorOperators.B2F, F, c)).mul(d);
                FloatVector xv = FloatVector.fromArray(F, x, xb + c * L);
                if ((c & 1) == 0) a0 = w.fma(xv, a0);
                else a1 = w.fma(xv, a1);
            }
            for (int c = loChunks; c < 2 * loChunks; c++) {
                FloatVector w = ((FloatVector) hi.convertShape(VectorOperators.B2F, F, c - loChunks)).mul(d);
                FloatVector xv = FloatVector.fromArray(F, x, xb + c * L);
                if ((c & 1) == 0) a0 = w.fma(xv, a0);
                else a1 = w.fma(xv, a1);
            }
        }
        return LaneMath.sum(a0.add(a1));
    }
}
