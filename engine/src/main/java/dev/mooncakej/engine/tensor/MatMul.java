package dev.mooncakej.engine.tensor;

/**
 * {@code out[r][o] = sum_i W[o][i] * x[r][i]} for a batch of activation rows, split over output rows
 * across the {@link ParallelExecutor}'s threads. One instance per engine; all state preallocated, so
 * a call allocates nothing. Every output element is computed by the same code in the same order
 * whatever the batch, so a row's result does not depend on the other rows (continuous batching is exact).
 */
public final class MatMul implements ParallelExecutor.RangeTask {
    private final ParallelExecutor executor;
    private final PreparedInput prepared;
    private WeightMatrix w;
    private float[] out;
    private float[] bias;
    private int nRows;
    private boolean accumulate;

    public MatMul(ParallelExecutor executor, int maxRows, int maxCols) {
        this.executor = executor;
        this.prepared = new PreparedInput(maxRows, maxCols);
    }

    /** {@code out[r * W.rows + o] = W[o] . x[r]} (+ bias[o] when bias is not null). */
    public void apply(WeightMatrix w, float[] x, int nRows, float[] out, float[] bias) {
        prepared.invalidate();
        run(w, x, nRows, out, bias, false);
    }

    /** As {@link #apply}, reusing the preparation of {@code x} from the previous call when it matches
     *  (for Q, K and V, which read the same unchanged input). */
    public void applySameInput(WeightMatrix w, float[] x, int nRows, float[] out, float[] bias) {
        run(w, x, nRows, out, bias, false);
    }

    /** {@code out[r * W.rows + o] += W[o] . x[r]} (residual connection fused). */
    public void accumulate(WeightMatrix w, float[] x, int nRows, float[] out) {
        prepared.invalidate();
        run(w, x, nRows, out, null, true);
    }

    private void run(WeightMatrix w, float[] x, int nRows, float[] out, float[] bias, boolean accumulate) {
        if (!prepared.holds(w.inputKind(), x, nRows, w.cols())) {
            prepared.prepare(w.inputKind(), x, nRows, w.cols());
        }
        this.w = w;
        this.out = out;
        this.bias = bias;
        this.nRows = nRows;
        this.accumulate = accumulate;
        executor.run(w.rows(), this);
        this.w = null;
        this.out = null;
        this.bias = null;
    }

    @Override
    public void run(int from, int to, int worker) {
        WeightMatrix w = this.w;
        int rows = w.rows();
        for (int o = from; o < to; o++) {
            float b = bias == null ? 0f : bias[o];
            for (int r = 0; r < nRows; r++) {
                float v = w.dot(o, prepared, r) + b;
                int idx = r * rows + o;
                out[idx] = accumulate ? out[idx] + v : v;
            }
        }
    }
}
