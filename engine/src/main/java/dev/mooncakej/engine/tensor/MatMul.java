package dev.mooncakej.engine.tensor;

/**
 * {@code out[r][o] = sum_i W[o][i] * x[r][i]} for a batch of activation rows, split over output rows
 * across the {@link ParallelExecutor}'s threads. One instance per engine; all state preallocated, so a
 * call allocates nothing.
 *
 * <p>Few rows (decode): each weight row is dequantized on the fly inside the dot product. Many rows
 * (prefill): each weight row is dequantized once into a per-thread buffer and multiplied with four
 * input rows at a time. Both paths compute every element with the same operations in the same order
 * ({@link WeightMatrix#dot(float[], int, float[], int, int)}), so a row's result does not depend on the
 * batch (continuous batching is exact).
 */
public final class MatMul implements ParallelExecutor.RangeTask {
    /** From this many rows on, a weight row is dequantized once and reused across rows. */
    static final int BATCHED_ROWS = 3;
    /** Weight rows dequantized together in the batched path (8 rows of 512 floats: 16 KiB, inside L1). */
    static final int WEIGHT_BLOCK = 8;

    private final ParallelExecutor executor;
    private final PreparedInput prepared;
    private final float[][] rowBuffers; // [worker][WEIGHT_BLOCK * maxCols]
    private final float[][] dots; // [worker][4]
    private WeightMatrix w;
    private float[] out;
    private float[] bias;
    private int nRows;
    private boolean accumulate;

    public MatMul(ParallelExecutor executor, int maxRows, int maxCols) {
        this.executor = executor;
        this.prepared = new PreparedInput(maxRows, maxCols);
        this.rowBuffers = new float[executor.threads()][WEIGHT_BLOCK * maxCols];
        this.dots = new float[executor.threads()][4];
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
        int cols = w.cols();
        if (nRows < BATCHED_ROWS && w.fusedDot()) runFused(w, from, to, rows);
        else runBatched(w, from, to, rows, cols, worker);
    }

    // Two small methods rather than one large one: C2 inlines vector code only within a budget, and
    // a vector operation left out of line allocates.
    private void runFused(WeightMatrix w, int from, int to, int rows) {
        for (int o = from; o < to; o++) {
            for (int r = 0; r < nRows; r++) store(r * rows + o, w.dot(o, prepared, r), o);
        }
    }

    private void runBatched(WeightMatrix w, int from, int to, int rows, int cols, int worker) {
        float[] x = prepared.values;
        // Blocked: WEIGHT_BLOCK dequantized weight rows stay in cache while every group of four input rows
        // passes over them, so each input row is read from L2 once per block rather than once per weight row.
        float[] wbuf = rowBuffers[worker];
        float[] d = dots[worker];
        for (int ob = from; ob < to; ob += WEIGHT_BLOCK) {
            int oe = Math.min(to, ob + WEIGHT_BLOCK);
            for (int o = ob; o < oe; o++) w.dequantizeRow(o, wbuf, (o - ob) * cols);
            int r = 0;
            for (; r + 3 < nRows; r += 4) {
                // a 2x4 register tile measured no faster and is past C2's inlining budget (it then allocates)
                for (int o = ob; o < oe; o++) {
                    WeightMatrix.dot4(
                            wbuf,
                            (o - ob) * cols,
                            x,
                            r * cols,
                            (r + 1) * cols,
                            (r + 2) * cols,
                            (r + 3) * cols,
                            cols,
                            d);
                    for (int k = 0; k < 4; k++) store((r + k) * rows + o, d[k], o);
                }
            }
            for (; r < nRows; r++) {
                for (int o = ob; o < oe; o++)
                    store(r * rows + o, WeightMatrix.dot(wbuf, (o - ob) * cols, x, r * cols, cols), o);
            }
        }
    }

    private void store(int idx, float v, int o) {
        if (bias != null) v += bias[o];
        out[idx] = accumulate ? out[idx] + v : v;
    }
}
