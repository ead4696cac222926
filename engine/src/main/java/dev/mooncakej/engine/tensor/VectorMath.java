package dev.mooncakej.engine.tensor;

import jdk.incubator.vector.FloatVector;

/** Vector helpers whose results do not depend on whether the JIT has compiled the caller. */
public final class VectorMath {
    private VectorMath() {}

    /**
     * Sum of the lanes in a fixed pairwise order (lane i with lane i + n/2, halving until one lane is
     * left). {@code reduceLanes(ADD)} may add in a different order once intrinsified than when
     * interpreted, which would make a row's result depend on JIT timing; this does not.
     */
    public static float sum(FloatVector v) {
        for (int half = v.length() / 2; half >= 1; half /= 2) v = v.add(v.slice(half));
        return v.lane(0);
    }
}
