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
 * as F16, values {@code rint(x*127/amax)}). See {@link PreparedInput}.
 */
public final class WeightMatrix {
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED.length() > 16 ? FloatVector.SPECIES_512 : FloatVector.SPECIES_PREFERRED;
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
            throw new IllegalArgumentException(name + ": expected " + rowBytes * rows + " bytes, found " + data.byteSize());
        }
    }

    public String name() { return name; }
    public GgmlType type() { return type; }
    public int rows() { return rows; }
    public int cols() { return cols; }
    public MemorySegment data() { return data; }

    /** The input form this matrix's kernel consumes. */
    public PreparedInput.Kind inputKind() {
        return switch (type) {
            case F32 -> PreparedInput.Kind.F32;
            case F16 -> PreparedInput.Kind.F16;
            case BF16 -> PreparedInput.Kind.BF16;
            case Q8_0, Q4_0 -> PreparedInput.Kind.Q8_0;
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
            case F16, BF16 -> throw new IllegalStateException("use dequantizeRow + dot for " + type);
        };
    }

    /** True when {@link #dot(int, PreparedInput, int)} can compute a row without a dequantized copy. */
    public boolean fusedDot() { return type == GgmlType.F32 || type == GgmlType.Q8_0 || type == GgmlType.Q4_0; }

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
     * Two dequantized weight rows ({@code w[wa..]}, {@code w[wb..]}) times four input rows: eight
     * results, each exactly {@link #dot}; every vector loaded is used two or four times.
     * {@code out[k * 4 + j]} = weight row k . input row j.
     */
    public static void dot2x4(float[] w, int wa, int wb, float[] x, int x0, int x1, int x2, int x3, int n, float[] out) {
        FloatVector z = FloatVector.zero(F);
        FloatVector a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z; // even chunks
        FloatVector b00 = z, b01 = z, b02 = z, b03 = z, b10 = z, b11 = z, b12 = z, b13 = z; // odd chunks
        int i = 0;
        int upper = F.loopBound(n);
        for (; i + L < upper; i += 2 * L) {
            FloatVector u = FloatVector.fromArray(F, w, wa + i), v = FloatVector.fromArray(F, w, wb + i);
            FloatVector p0 = FloatVector.fromArray(F, x, x0 + i), p1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector p2 = FloatVector.fromArray(F, x, x2 + i), p3 = FloatVector.fromArray(F, x, x3 + i);
            a00 = u.fma(p0, a00); a01 = u.fma(p1, a01); a02 = u.fma(p2, a02); a03 = u.fma(p3, a03);
            a10 = v.fma(p0, a10); a11 = v.fma(p1, a11); a12 = v.fma(p2, a12); a13 = v.fma(p3, a13);
            int j = i + L;
            u = FloatVector.fromArray(F, w, wa + j);
            v = FloatVector.fromArray(F, w, wb + j);
            p0 = FloatVector.fromArray(F, x, x0 + j); p1 = FloatVector.fromArray(F, x, x1 + j);
            p2 = FloatVector.fromArray(F, x, x2 + j); p3 = FloatVector.fromArray(F, x, x3 + j);
            b00 = u.fma(p0, b00); b01 = u.fma(p1, b01); b02 = u.fma(p2, b02); b03 = u.fma(p3, b03);
            b10 = v.fma(p0, b10); b11 = v.fma(p1, b11); b12 = v.fma(p2, b12); b13 = v.fma(p3, b13);
        }
        if (i < upper) {
            FloatVector u = FloatVector.fromArray(F, w, wa + i), v = FloatVector.fromArray(F, w, wb + i);
            FloatVector p0 = FloatVector.fromArray(F, x, x0 + i), p1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector p2 = FloatVector.fromArray(F, x, x2 + i), p3 = FloatVector.fromArray(F, x, x3 + i);
            a00 = u.fma(p0, a00); a01 = u.fma(p1, a01); a02 = u.fma(p2, a02); a03 = u.fma(p3, a03);
            a10 = v.fma(p0, a10); a11 = v.fma(p1, a11); a12 = v.fma(p2, a12); a13 = v.fma(p3, a13);
            i += L;
        }
        out[0] = LaneMath.sum(a00.add(b00)); out[1] = LaneMath.sum(a01.add(b01));
        out[2] = LaneMath.sum(a02.add(b02)); out[3] = LaneMath.sum(a03.add(b03));
        out[4] = LaneMath.sum(a10.add(b10)); out[5] = LaneMath.sum(a11.add(b11));
        out[6] = LaneMath.sum(a12.add(b12)); out[7] = LaneMath.sum(a13.add(b13));
        for (; i < n; i++) {
            float wi = w[wa + i], wj = w[wb + i];
            out[0] += wi * x[x0 + i]; out[1] += wi * x[x1 + i]; out[2] += wi * x[x2 + i]; out[3] += wi * x[x3 + i];
            out[4] += wj * x[x0 + i]; out[5] += wj * x[x1 + i]; out[6] += wj * x[x2 + i]; out[7] += wj * x[x3 + i];
        }
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
        out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;
    }

    /** Dequantizes row {@code o} into {@code out[outOffset ..]} (embedding look-up, batched matmul). */
    public void dequantizeRow(int o, float[] out, int outOffset) {
        long off = o * rowBytes;
        switch (type) {
            case F32 -> MemorySegment.copy(data, F32, off, out, outOffset, cols);
            case F16 -> { for (int i = 0; i < cols; i++) out[outOffset + i] = Float.float16ToFloat(data.get(I16, off + 2L * i)); }
            case BF16 -> { for (int i = 0; i < cols; i++) out[outOffset + i] = Float.intBitsToFloat(data.get(I16, off + 2L * i) << 16); }
            case Q8_0 -> {
                for (int b = 0; b < cols / 32; b++) {
                    long bo = off + 34L * b;
                    FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, bo)));
                    for (int p = 0; p < 32; p += L) {
                        ((FloatVector) ByteVector.fromMemorySegment(B, data, bo + 2 + p, ByteOrder.LITTLE_ENDIAN)
                                .convertShape(VectorOperators.B2F, F, 0)).mul(d).intoArray(out, outOffset + b * 32 + p);
                    }
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < cols / 32; b++) {
                    long bo = off + 18L * b;
                    FloatVector d = FloatVector.broadcast(F, Float.float16ToFloat(data.get(I16, bo)));
                    ByteVector q = ByteVector.fromMemorySegment(B16, data, bo + 2, ByteOrder.LITTLE_ENDIAN);
                    ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
                    ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8);
                    for (int p = 0; p < 16 / L; p++) {
                        ((FloatVector) lo.convertShape(VectorOperators.B2F, F, p)).mul(d).intoArray(out, outOffset + b * 32 + p * L);
                        ((FloatVector) hi.convertShape(VectorOperators.B2F, F, p)).mul(d).intoArray(out, outOffset + b * 32 + 16 + p * L);
                    }
                }
            }
        }
    }

    private float dotF32(long off, float[] x, int xo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int i = 0;
        int upper = F.loopBound(cols);
        for (; i + L < upper; i += 2 * L) {
            a0 = FloatVector.fromMemorySegment(F, data, off + 4L * i, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, xo + i), a0);
            a1 = FloatVector.fromMemorySegment(F, data, off + 4L * (i + L), ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, xo + i + L), a1);
        }
        if (i < upper) {
            a0 = FloatVector.fromMemorySegment(F, data, off + 4L * i, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, xo + i), a0);
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
                FloatVector w0 = ((FloatVector) ByteVector.fromMemorySegment(B, data, bo + 2 + p, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, F, 0)).mul(d);
                FloatVector w1 = ((FloatVector) ByteVector.fromMemorySegment(B, data, bo + 2 + p + L, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, F, 0)).mul(d);
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
