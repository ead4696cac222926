package dev.mooncakej.engine.tensor;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;

/** The deterministic vector helpers: accurate, and the vector and scalar forms agree bit for bit. */
class LaneMathTest {
    private static final int L = LaneMath.L;

    @Test
    void expIsWithinThreeUlpOfMathExpAndVectorMatchesScalarExactly() {
        Random rnd = new Random(5);
        float[] in = new float[L], out = new float[L];
        for (int k = 0; k < 20_000; k++) {
            for (int i = 0; i < L; i++) in[i] = (float) (rnd.nextDouble() * 170 - 85);
            LaneMath.exp(FloatVector.fromArray(LaneMath.F, in, 0)).intoArray(out, 0);
            for (int i = 0; i < L; i++) {
                float ref = (float) Math.exp(in[i]);
                assertThat(out[i]).as("exp(%s)", in[i]).isEqualTo(LaneMath.exp(in[i]));
                assertThat(Math.abs(out[i] - ref))
                        .as("exp(%s) = %s vs %s", in[i], out[i], ref)
                        .isLessThanOrEqualTo(3 * Math.ulp(ref));
            }
        }
        assertThat(LaneMath.exp(0f)).isEqualTo(1f);
        assertThat(LaneMath.exp(-1000f)).isLessThan(1.5e-38f);
        assertThat(LaneMath.exp(1000f)).isGreaterThan(1e38f).isFinite();
    }

    @Test
    void sumAddsLanesInTheDocumentedPairwiseOrder() {
        float[] v = new float[L];
        Random rnd = new Random(9);
        for (int k = 0; k < 1000; k++) {
            for (int i = 0; i < L; i++) v[i] = (float) rnd.nextGaussian() * (1 << rnd.nextInt(20));
            float[] t = v.clone();
            for (int half = L / 2; half >= 1; half /= 2) for (int i = 0; i < half; i++) t[i] = t[i] + t[i + half];
            assertThat(LaneMath.sum(FloatVector.fromArray(LaneMath.F, v, 0))).isEqualTo(t[0]);
        }
    }

    @Test
    void swigluAndSoftmaxMatchTheirDefinitions() {
        int n = 3 * L + 5; // vector part and scalar tail
        float[] g = new float[n], u = new float[n], expect = new float[n];
        for (int i = 0; i < n; i++) {
            g[i] = (i - n / 2) * 0.37f;
            u[i] = 1f + i * 0.01f;
            expect[i] = (float) (g[i] / (1 + Math.exp(-g[i])) * u[i]);
        }
        LaneMath.swiglu(g, u, n);
        for (int i = 0; i < n; i++)
            assertThat(g[i]).isCloseTo(expect[i], Offset.offset(1e-5f * Math.max(1, Math.abs(expect[i]))));
        float[] s = {1f, 2f, 3f, -50f, 0.5f};
        double sum = LaneMath.expShifted(s, s.length, 3f);
        assertThat(sum)
                .isCloseTo(Math.exp(-2) + Math.exp(-1) + 1 + Math.exp(-53) + Math.exp(-2.5), Offset.offset(1e-6));
    }
}
