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

    /** Dot product of weight row {@code o} with prepared input row {@code r}. */
    public float dot(int o, PreparedInput in, int r) {
        long off = o * rowBytes;
        int xo = r * cols;
        return switch (type) {
            case F32 -> dotF32(off, in.values, xo);
            case F16 -> dotF16(off, in.values, xo);
            case BF16 -> dotBF16(off, in.values, xo);
            case Q8_0 -> dotQ8(off, in.values, xo, in.scales, r * (cols / 32));
            case Q4_0 -> dotQ4(off, in.values, xo, in.scales, r * (cols / 32));
        };
    }

    /** Dequantizes row {@code o} into {@code out[outOffset ..]} (embedding look-up). */
    public void dequantizeRow(int o, float[] out, int outOffset) {
        long off = o * rowBytes;
        switch (type) {
            case F32 -> MemorySegment.copy(data, F32, off, out, outOffset, cols);
            case F16 -> { for (int i = 0; i < cols; i++) out[outOffset + i] = Float.float16ToFloat(data.get(I16, off + 2L * i)); }
            case BF16 -> { for (int i = 0; i < cols; i++) out[outOffset + i] = Float.intBitsToFloat(data.get(I16, off + 2L * i) << 16); }
            case Q8_0 -> {
                for (int b = 0; b < cols / 32; b++) {
                    long bo = off + 34L * b;
                    float d = Float.float16ToFloat(data.get(I16, bo));
                    for (int j = 0; j < 32; j++) out[outOffset + b * 32 + j] = d * data.get(ValueLayout.JAVA_BYTE, bo + 2 + j);
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < cols / 32; b++) {
                    long bo = off + 18L * b;
                    float d = Float.float16ToFloat(data.get(I16, bo));
                    for (int j = 0; j < 16; j++) {
                        int q = data.get(ValueLayout.JAVA_BYTE, bo + 2 + j) & 0xFF;
                        out[outOffset + b * 32 + j] = d * ((q & 0x0F) - 8);
                        out[outOffset + b * 32 + j + 16] = d * ((q >>> 4) - 8);
                    }
                }
            }
        }
    }

    private float dotF32(long off, float[] x, int xo) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        int upper = F.loopBound(cols);
        for (; i < upper; i += L) {
            FloatVector w = FloatVector.fromMemorySegment(F, data, off + 4L * i, ByteOrder.LITTLE_ENDIAN);
            acc = w.fma(FloatVector.fromArray(F, x, xo + i), acc);
        }
        float s = VectorMath.sum(acc);
        for (; i < cols; i++) s += data.get(F32, off + 4L * i) * x[xo + i];
        return s;
    }

    private float dotF16(long off, float[] x, int xo) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 3 < cols; i += 4) {
            s0 += Float.float16ToFloat(data.get(I16, off + 2L * i)) * x[xo + i];
            s1 += Float.float16ToFloat(data.get(I16, off + 2L * i + 2)) * x[xo + i + 1];
            s2 += Float.float16ToFloat(data.get(I16, off + 2L * i + 4)) * x[xo + i + 2];
            s3 += Float.float16ToFloat(data.get(I16, off + 2L * i + 6)) * x[xo + i + 3];
        }
        for (; i < cols; i++) s0 += Float.float16ToFloat(data.get(I16, off + 2L * i)) * x[xo + i];
        return (s0 + s1) + (s2 + s3);
    }

    private float dotBF16(long off, float[] x, int xo) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 3 < cols; i += 4) {
            s0 += Float.intBitsToFloat(data.get(I16, off + 2L * i) << 16) * x[xo + i];
            s1 += Float.intBitsToFloat(data.get(I16, off + 2L * i + 2) << 16) * x[xo + i + 1];
            s2 += Float.intBitsToFloat(data.get(I16, off + 2L * i + 4) << 16) * x[xo + i + 2];
            s3 += Float.intBitsToFloat(data.get(I16, off + 2L * i + 6) << 16) * x[xo + i + 3];
        }
        for (; i < cols; i++) s0 += Float.intBitsToFloat(data.get(I16, off + 2L * i) << 16) * x[xo + i];
        return (s0 + s1) + (s2 + s3);
    }

    /** Q8_0 weights x Q8_0 activations: per block, the exact integer dot times both scales. */
    private float dotQ8(long off, float[] xq, int xo, float[] xd, int so) {
        FloatVector acc = FloatVector.zero(F);
        int blocks = cols >> 5;
        for (int b = 0; b < blocks; b++) {
            long bo = off + 34L * b;
            float scale = Float.float16ToFloat(data.get(I16, bo)) * xd[so + b];
            FloatVector blockSum = FloatVector.zero(F);
            int xb = xo + (b << 5);
            for (int p = 0; p < 32; p += L) {
                FloatVector w = (FloatVector) ByteVector.fromMemorySegment(B, data, bo + 2 + p, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, F, 0);
                blockSum = w.fma(FloatVector.fromArray(F, xq, xb + p), blockSum);
            }
            acc = blockSum.fma(FloatVector.broadcast(F, scale), acc);
        }
        return VectorMath.sum(acc);
    }

    /** Q4_0 weights x Q8_0 activations. */
    private float dotQ4(long off, float[] xq, int xo, float[] xd, int so) {
        FloatVector acc = FloatVector.zero(F);
        int blocks = cols >> 5;
        for (int b = 0; b < blocks; b++) {
            long bo = off + 18L * b;
            float scale = Float.float16ToFloat(data.get(I16, bo)) * xd[so + b];
            ByteVector q = ByteVector.fromMemorySegment(B16, data, bo + 2, ByteOrder.LITTLE_ENDIAN);
            ByteVector lo = q.and((byte) 0x0F).sub((byte) 8);
            ByteVector hi = q.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8);
            FloatVector blockSum = FloatVector.zero(F);
            int xb = xo + (b << 5);
            for (int p = 0; p < 16 / L; p++) {
                FloatVector wl = (FloatVector) lo.convertShape(VectorOperators.B2F, F, p);
                FloatVector wh = (FloatVector) hi.convertShape(VectorOperators.B2F, F, p);
                blockSum = wl.fma(FloatVector.fromArray(F, xq, xb + p * L), blockSum);
                blockSum = wh.fma(FloatVector.fromArray(F, xq, xb + 16 + p * L), blockSum);
            }
            acc = blockSum.fma(FloatVector.broadcast(F, scale), acc);
        }
        return VectorMath.sum(acc);
    }
}
