package dev.mooncakej.engine.llama;

import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.kv.KvCacheLayout;
import dev.mooncakej.engine.kv.PagedKvCache;
import dev.mooncakej.engine.tensor.LaneMath;
import dev.mooncakej.engine.tensor.MatMul;
import dev.mooncakej.engine.tensor.ParallelExecutor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Llama-family forward pass ({@code llama}, {@code qwen2}, {@code qwen3}) over a {@link ForwardBatch}, reading
 * and writing K/V in a {@link PagedKvCache}. Every buffer is allocated here, once, for up to
 * {@code maxRows} rows, so a forward pass allocates nothing.
 *
 * <p>Per layer: RMSNorm -> Q,K,V (+bias for qwen2) -> per-head RMSNorm of Q and K (qwen3) -> RoPE
 * -> K,V into the cache -> causal grouped-query attention over the cache -> output projection
 * (+residual) -> RMSNorm -> SwiGLU FFN (+residual) -> {@link LayerListener#onLayer}. Numerics follow
 * llama.cpp's CPU backend (RoPE angles as ggml computes them, RMSNorm with a double sum, activations
 * prepared per weight type).
 */
public final class LlamaModel implements AutoCloseable {
    private static final VectorSpecies<Float> F =
            FloatVector.SPECIES_PREFERRED.length() > 16 ? FloatVector.SPECIES_512 : FloatVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final LlamaConfig c;
    private final LlamaWeights w;
    private final PagedKvCache cache;
    private final MemorySegment slab;
    private final KvCacheLayout layout;
    private final int maxRows;
    private final ParallelExecutor executor;
    private final MatMul mm;
    private final AttentionTask attention;

    // activations, row-major [rows][...]
    private final float[] x; // [R][E] residual stream
    private final float[] xb; // [R][E] normed
    private final float[] q; // [R][H*hd]
    private final float[] k; // [R][Hkv*hd]
    private final float[] v; // [R][Hkv*hd]
    private final float[] att; // [R][H*hd]
    private final float[] hb; // [R][FF]
    private final float[] hb2; // [R][FF]
    private final float[] ropeCos; // [ropeDim/2] scratch
    private final float[] ropeSin; // [ropeDim/2] scratch

    public LlamaModel(GgufFile file, LlamaConfig config, PagedKvCache cache, int maxRows, ParallelExecutor executor) {
        this.c = config;
        this.w = new LlamaWeights(file, config);
        this.cache = cache;
        this.slab = cache.slab();
        this.layout = cache.layout();
        if (layout.layers() != c.layers() || layout.kvHeads() != c.kvHeads() || layout.headDim() != c.headDim()) {
            throw new IllegalArgumentException("kv cache layout " + layout + " does not match the model " + c);
        }
        this.maxRows = maxRows;
        this.executor = executor;
        int widest = Math.max(Math.max(c.embedding(), c.feedForward()), c.qDim());
        this.mm = new MatMul(executor, maxRows, widest);
        this.x = new float[maxRows * c.embedding()];
        this.xb = new float[maxRows * c.embedding()];
        this.q = new float[maxRows * c.qDim()];
        this.k = new float[maxRows * c.kvDim()];
        this.v = new float[maxRows * c.kvDim()];
        this.att = new float[maxRows * c.qDim()];
        this.hb = new float[maxRows * c.feedForward()];
        this.hb2 = new float[maxRows * c.feedForward()];
        this.ropeCos = new float[c.ropeDim() / 2];
        this.ropeSin = new float[c.ropeDim() / 2];
        this.attention = new AttentionTask(executor.threads(), c.contextLength());
    }

    public LlamaConfig config() {
        return c;
    }

    public int maxRows() {
        return maxRows;
    }

    public PagedKvCache cache() {
        return cache;
    }

    /**
     * Runs the batch; writes logits of the rows that want them, in row order, to
     * {@code logits[i * vocab ..]}. K and V of every row are stored at its position.
     */
    public void forward(ForwardBatch b, float[] logits, LayerListener listener) {
        int rows = b.size;
        if (rows == 0) return;
        if (rows > maxRows)
            throw new IllegalArgumentException("batch of " + rows + " rows exceeds the engine's " + maxRows);
        int e = c.embedding();
        for (int r = 0; r < rows; r++) {
            int t = b.tokens[r];
            if (t < 0 || t >= c.vocab())
                throw new IllegalArgumentException("token id " + t + " out of range [0, " + c.vocab() + ")");
            int pos = b.positions[r];
            if (pos < 0 || pos >= c.contextLength())
                throw new IllegalArgumentException("position " + pos + " out of range [0, " + c.contextLength() + ")");
            int blk = pos / layout.blockTokens();
            if (b.tables[r] == null || blk >= b.tables[r].length || b.tables[r][blk] < 0) {
                throw new IllegalStateException("row " + r + ": no KV block allocated for position " + pos);
            }
            w.tokenEmbedding.dequantizeRow(t, x, r * e);
        }
        for (int l = 0; l < c.layers(); l++) {
            for (int r = 0; r < rows; r++) rmsNorm(x, r * e, w.attnNorm[l], xb, r * e, e);
            mm.apply(w.wq[l], xb, rows, q, w.bq == null ? null : w.bq[l]);
            mm.applySameInput(w.wk[l], xb, rows, k, w.bk == null ? null : w.bk[l]);
            mm.applySameInput(w.wv[l], xb, rows, v, w.bv == null ? null : w.bv[l]);
            for (int r = 0; r < rows; r++) {
                if (w.qNorm != null) {
                    headNorm(q, r * c.qDim(), c.heads(), w.qNorm[l]);
                    headNorm(k, r * c.kvDim(), c.kvHeads(), w.kNorm[l]);
                }
                ropeAngles(b.positions[r]);
                rope(q, r * c.qDim(), c.heads());
                rope(k, r * c.kvDim(), c.kvHeads());
                storeKv(l, r, b);
            }
            attention.layer = l;
            attention.batch = b;
            executor.run(rows * c.heads(), attention);
            attention.batch = null;
            mm.accumulate(w.wo[l], att, rows, x);
            for (int r = 0; r < rows; r++) rmsNorm(x, r * e, w.ffnNorm[l], xb, r * e, e);
            mm.apply(w.wGate[l], xb, rows, hb, null);
            mm.applySameInput(w.wUp[l], xb, rows, hb2, null);
            LaneMath.swiglu(hb, hb2, rows * c.feedForward());
            mm.accumulate(w.wDown[l], hb, rows, x);
            listener.onLayer(l);
        }
        int n = 0;
        for (int r = 0; r < rows; r++) {
            if (b.wantLogits[r]) rmsNorm(x, r * e, w.outputNorm, xb, (n++) * e, e);
        }
        if (n > 0) mm.apply(w.output, xb, n, logits, null);
    }

    private void rmsNorm(float[] in, int io, float[] weight, float[] out, int oo, int n) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += in[io + i] * in[io + i];
        float mean = (float) (sum / n);
        float scale = 1f / (float) Math.sqrt(mean + c.rmsEps());
        for (int i = 0; i < n; i++) out[oo + i] = in[io + i] * scale * weight[i];
    }

    /** Qwen3's Q/K norm: each head's vector RMS-normed in place with the layer's per-dimension weight. */
    private void headNorm(float[] vec, int off, int heads, float[] weight) {
        int hd = c.headDim();
        for (int h = 0; h < heads; h++) rmsNorm(vec, off + h * hd, weight, vec, off + h * hd, hd);
    }

    /** RoPE angles for one position, computed like ggml (float theta, multiplied by theta_scale per pair). */
    private void ropeAngles(int pos) {
        int half = c.ropeDim() / 2;
        float thetaScale = (float) Math.pow(c.ropeBase(), -2.0 / c.ropeDim());
        float theta = pos;
        for (int i = 0; i < half; i++) {
            float t = c.ropeFreqScale() * theta;
            if (w.ropeFreqFactors != null) t = c.ropeFreqScale() * (theta / w.ropeFreqFactors[i]);
            ropeCos[i] = (float) Math.cos(t);
            ropeSin[i] = (float) Math.sin(t);
            theta *= thetaScale;
        }
    }

    private void rope(float[] vec, int off, int heads) {
        int hd = c.headDim();
        int half = c.ropeDim() / 2;
        for (int h = 0; h < heads; h++) {
            int base = off + h * hd;
            for (int i = 0; i < half; i++) {
                int i0, i1;
                if (c.ropeNeox()) {
                    i0 = base + i;
                    i1 = base + i + half;
                } else {
                    i0 = base + 2 * i;
                    i1 = i0 + 1;
                }
                float x0 = vec[i0], x1 = vec[i1];
                vec[i0] = x0 * ropeCos[i] - x1 * ropeSin[i];
                vec[i1] = x0 * ropeSin[i] + x1 * ropeCos[i];
            }
        }
    }

    private void storeKv(int layer, int r, ForwardBatch b) {
        int pos = b.positions[r];
        int bt = layout.blockTokens();
        int block = b.tables[r][pos / bt];
        long base = cache.layerOffset(block, layer);
        int kvDim = c.kvDim();
        MemorySegment.copy(k, r * kvDim, slab, F32, base + layout.keyOffset(pos % bt), kvDim);
        MemorySegment.copy(v, r * kvDim, slab, F32, base + layout.valueOffset(pos % bt), kvDim);
    }

    /** Causal attention of each (row, head) over the cached K/V of that row's sequence. */
    private final class AttentionTask implements ParallelExecutor.RangeTask {
        final float[][] scores; // [worker][context]
        int layer;
        ForwardBatch batch;

        AttentionTask(int workers, int context) {
            scores = new float[workers][context];
        }

        @Override
        public void run(int from, int to, int worker) {
            int hd = c.headDim();
            int heads = c.heads();
            int group = heads / c.kvHeads();
            int bt = layout.blockTokens();
            float scale = (float) (1.0 / Math.sqrt(hd));
            float[] s = scores[worker];
            for (int idx = from; idx < to; idx++) {
                int r = idx / heads;
                int h = idx % heads;
                int kvh = h / group;
                int qo = r * c.qDim() + h * hd;
                int pos = batch.positions[r];
                int[] table = batch.tables[r];
                long headOff = (long) kvh * hd * Float.BYTES;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j <= pos; j++) {
                    long ko = cache.layerOffset(table[j / bt], layer) + layout.keyOffset(j % bt) + headOff;
                    float d = dotSlab(q, qo, ko, hd) * scale;
                    s[j] = d;
                    if (d > max) max = d;
                }
                double sum = LaneMath.expShifted(s, pos + 1, max);
                float inv = (float) (1.0 / sum);
                int ao = r * c.qDim() + h * hd;
                Arrays.fill(att, ao, ao + hd, 0f);
                for (int j = 0; j <= pos; j++) {
                    long vo = cache.layerOffset(table[j / bt], layer) + layout.valueOffset(j % bt) + headOff;
                    axpySlab(s[j] * inv, vo, att, ao, hd);
                }
            }
        }
    }

    private float dotSlab(float[] a, int ao, long so, int n) {
        int i = 0;
        float sum = 0;
        if (n >= F.length()) {
            FloatVector acc = FloatVector.zero(F);
            int upper = F.loopBound(n);
            for (; i < upper; i += F.length()) {
                acc = FloatVector.fromArray(F, a, ao + i)
                        .fma(FloatVector.fromMemorySegment(F, slab, so + 4L * i, ByteOrder.LITTLE_ENDIAN), acc);
            }
            sum = LaneMath.sum(acc);
        }
        for (; i < n; i++) sum += a[ao + i] * slab.get(F32, so + 4L * i);
        return sum;
    }

    private void axpySlab(float alpha, long so, float[] out, int oo, int n) {
        int i = 0;
        if (n >= F.length()) {
            int upper = F.loopBound(n);
            for (; i < upper; i += F.length()) {
                FloatVector vv = FloatVector.fromMemorySegment(F, slab, so + 4L * i, ByteOrder.LITTLE_ENDIAN);
                vv.fma(FloatVector.broadcast(F, alpha), FloatVector.fromArray(F, out, oo + i))
                        .intoArray(out, oo + i);
            }
        }
        for (; i < n; i++) out[oo + i] += alpha * slab.get(F32, so + 4L * i);
    }

    @Override
    public void close() {
        // weights live in the caller's GgufFile mapping; the cache and executor belong to the engine
    }
}
