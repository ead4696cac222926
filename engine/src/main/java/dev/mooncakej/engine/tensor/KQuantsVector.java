package dev.mooncakej.engine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The K-quants most files are made of (Q4_K, Q5_K, Q6_K), dequantized a row at a time with the Vector
 * API: {@code L} packed bytes are loaded at once, their bit fields unpacked in byte lanes, widened to
 * floats and scaled. Every value is the same float operation as {@link KQuants}' scalar reference
 * (a multiply, then a subtract; no fused multiply-add), so the two agree bit for bit (KQuantsTest).
 */
final class KQuantsVector {
    private static final VectorSpecies<Float> F = WeightMatrix.F;
    private static final VectorSpecies<Byte> B = WeightMatrix.B;
    private static final int L = WeightMatrix.L;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private KQuantsVector() {}

    private static float f16(MemorySegment m, long at) {
        return Float.float16ToFloat(m.get(I16, at));
    }

    private static ByteVector bytes(MemorySegment m, long at) {
        return ByteVector.fromMemorySegment(B, m, at, ByteOrder.LITTLE_ENDIAN);
    }

    private static FloatVector floats(ByteVector v) {
        return (FloatVector) v.convertShape(VectorOperators.B2F, F, 0);
    }

    static void dequantizeQ4K(MemorySegment data, long off, int cols, float[] out, int outOffset) {
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 144L * b;
            float d = f16(data, bo), dmin = f16(data, bo + 2);
            long scales = bo + 4, qs = bo + 16;
            int y = outOffset + 256 * b;
            for (int j = 0; j < 4; j++) {
                int a = KQuants.scaleMin(data, scales, 2 * j), c = KQuants.scaleMin(data, scales, 2 * j + 1);
                float d1 = d * (a & 0xFF), m1 = dmin * (a >> 8);
                float d2 = d * (c & 0xFF), m2 = dmin * (c >> 8);
                for (int l = 0; l < 32; l += L) {
                    ByteVector q = bytes(data, qs + 32L * j + l);
                    floats(q.and((byte) 0x0F)).mul(d1).sub(m1).intoArray(out, y + 64 * j + l);
                    floats(q.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F))
                            .mul(d2)
                            .sub(m2)
                            .intoArray(out, y + 64 * j + 32 + l);
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
            for (int j = 0; j < 4; j++) {
                int a = KQuants.scaleMin(data, scales, 2 * j), c = KQuants.scaleMin(data, scales, 2 * j + 1);
                float d1 = d * (a & 0xFF), m1 = dmin * (a >> 8);
                float d2 = d * (c & 0xFF), m2 = dmin * (c >> 8);
                for (int l = 0; l < 32; l += L) {
                    ByteVector q = bytes(data, qs + 32L * j + l);
                    ByteVector h = bytes(data, qh + l);
                    ByteVector h1 = h.lanewise(VectorOperators.LSHR, 2 * j)
                            .and((byte) 1)
                            .lanewise(VectorOperators.LSHL, 4);
                    ByteVector h2 = h.lanewise(VectorOperators.LSHR, 2 * j + 1)
                            .and((byte) 1)
                            .lanewise(VectorOperators.LSHL, 4);
                    floats(q.and((byte) 0x0F).or(h1)).mul(d1).sub(m1).intoArray(out, y + 64 * j + l);
                    floats(q.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).or(h2))
                            .mul(d2)
                            .sub(m2)
                            .intoArray(out, y + 64 * j + 32 + l);
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
                for (int l = 0; l < 32; l += L) {
                    int is = l / 16;
                    ByteVector lo0 = bytes(data, ql + l), lo1 = bytes(data, ql + l + 32), h = bytes(data, qh + l);
                    q6(lo0, h, 0, 0, d * data.get(ValueLayout.JAVA_BYTE, sc + is), out, y + l);
                    q6(lo1, h, 0, 2, d * data.get(ValueLayout.JAVA_BYTE, sc + is + 2), out, y + l + 32);
                    q6(lo0, h, 4, 4, d * data.get(ValueLayout.JAVA_BYTE, sc + is + 4), out, y + l + 64);
                    q6(lo1, h, 4, 6, d * data.get(ValueLayout.JAVA_BYTE, sc + is + 6), out, y + l + 96);
                }
            }
        }
    }

    /**
     * One Q6_K quarter: four low bits from {@code lo >>> loShift}, two high bits from {@code h >>> hShift},
     * minus 32, times the scale. Its own small method: one large method is past C2's inlining budget, and
     * vector operations that are not inlined allocate (measured: 30 times slower).
     */
    private static void q6(ByteVector lo, ByteVector h, int loShift, int hShift, float scale, float[] out, int at) {
        ByteVector q = lo.lanewise(VectorOperators.LSHR, loShift)
                .and((byte) 0xF)
                .or(h.lanewise(VectorOperators.LSHR, hShift).and((byte) 3).lanewise(VectorOperators.LSHL, 4));
        floats(q.sub((byte) 32)).mul(scale).intoArray(out, at);
    }

    // Fused dot products for decode: the dequantized values (the same operations as above) multiplied
    // with the prepared input in the canonical order of WeightMatrix.dot (chunks of L in index order,
    // even chunks into the first accumulator, odd into the second; 32 / L is even, so a chunk's parity
    // is (l / L) & 1 within a run of 32), so a row's result is bit for bit the batched path's.

    static float dotQ4K(MemorySegment data, long off, int cols, float[] x, int xo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 144L * b;
            float d = f16(data, bo), dmin = f16(data, bo + 2);
            for (int sub = 0; sub < 8; sub++) { // values 32*sub .. 32*sub + 31: low nibbles, then high
                int sm = KQuants.scaleMin(data, bo + 4, sub);
                float scale = d * (sm & 0xFF), min = dmin * (sm >> 8);
                long qs = bo + 16 + 32L * (sub >> 1);
                int shift = (sub & 1) * 4;
                int xb = xo + 256 * b + 32 * sub;
                for (int l = 0; l < 32; l += 2 * L) {
                    a0 = q4v(data, qs + l, shift, scale, min).fma(FloatVector.fromArray(F, x, xb + l), a0);
                    a1 = q4v(data, qs + l + L, shift, scale, min).fma(FloatVector.fromArray(F, x, xb + l + L), a1);
                }
            }
        }
        return LaneMath.sum(a0.add(a1));
    }

    private static FloatVector q4v(MemorySegment data, long at, int shift, float scale, float min) {
        return floats(bytes(data, at).lanewise(VectorOperators.LSHR, shift).and((byte) 0x0F))
                .mul(scale)
                .sub(min);
    }

    static float dotQ6K(MemorySegment data, long off, int cols, float[] x, int xo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int b = 0; b < cols / 256; b++) {
            long bo = off + 210L * b;
            float d = f16(data, bo + 208);
            for (int n = 0; n < 2; n++) {
                long ql = bo + 64L * n, qh = bo + 128 + 32L * n, sc = bo + 192 + 8L * n;
                int xb = xo + 256 * b + 128 * n;
                for (int part = 0; part < 4; part++) { // values 32*part .. 32*part + 31
                    long lo = ql + (part & 1) * 32L;
                    int loShift = (part >> 1) * 4, hShift = 2 * part;
                    for (int l = 0; l < 32; l += 2 * L) {
                        float s0 = d * data.get(ValueLayout.JAVA_BYTE, sc + l / 16 + 2 * part);
                        float s1 = d * data.get(ValueLayout.JAVA_BYTE, sc + (l + L) / 16 + 2 * part);
                        a0 = q6v(data, lo + l, qh + l, loShift, hShift, s0)
                                .fma(FloatVector.fromArray(F, x, xb + 32 * part + l), a0);
                        a1 = q6v(data, lo + l + L, qh + l + L, loShift, hShift, s1)
                                .fma(FloatVector.fromArray(F, x, xb + 32 * part + l + L), a1);
                    }
                }
            }
        }
        return LaneMath.sum(a0.add(a1));
    }

    private static FloatVector q6v(MemorySegment data, long lo, long h, int loShift, int hShift, float scale) {
        ByteVector q = bytes(data, lo)
                .lanewise(VectorOperators.LSHR, loShift)
                .and((byte) 0xF)
                .or(bytes(data, h)
                        .lanewise(VectorOperators.LSHR, hShift)
                        .and((byte) 3)
                        .lanewise(VectorOperators.LSHL, 4));
        return floats(q.sub((byte) 32)).mul(scale);
    }
}
