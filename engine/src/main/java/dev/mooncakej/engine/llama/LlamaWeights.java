package dev.mooncakej.engine.llama;

import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.gguf.GgufTensor;
import dev.mooncakej.engine.tensor.WeightMatrix;
import java.util.Arrays;

/** The tensors of a Llama-family model, checked for shape and exposed in place from the mapped file. */
public final class LlamaWeights {
    final WeightMatrix tokenEmbedding; // [vocab][E]
    final float[] outputNorm; // [E]
    final WeightMatrix output; // [vocab][E] (the embedding when tied)
    final float[][] attnNorm; // [L][E]
    final WeightMatrix[] wq; // [L] of [H*hd][E]
    final WeightMatrix[] wk; // [L] of [Hkv*hd][E]
    final WeightMatrix[] wv; // [L] of [Hkv*hd][E]
    final WeightMatrix[] wo; // [L] of [E][H*hd]
    final float[][] bq, bk, bv; // [L][H*hd], [L][Hkv*hd] (qwen2 only, else null)
    final float[][] qNorm, kNorm; // [L][hd] per-head RMSNorm weights (qwen3 only, else null)
    final float[][] ffnNorm; // [L][E]
    final WeightMatrix[] wGate; // [L] of [FF][E]
    final WeightMatrix[] wUp; // [L] of [FF][E]
    final WeightMatrix[] wDown; // [L] of [E][FF]
    final float[] ropeFreqFactors; // [ropeDim/2] or null

    LlamaWeights(GgufFile f, LlamaConfig c) {
        int e = c.embedding();
        tokenEmbedding = matrix(f, "token_embd.weight", c.vocab(), e);
        outputNorm = vector(f, "output_norm.weight", e);
        output = f.tensorOrNull("output.weight") != null ? matrix(f, "output.weight", c.vocab(), e) : tokenEmbedding;
        int n = c.layers();
        attnNorm = new float[n][];
        ffnNorm = new float[n][];
        wq = new WeightMatrix[n];
        wk = new WeightMatrix[n];
        wv = new WeightMatrix[n];
        wo = new WeightMatrix[n];
        wGate = new WeightMatrix[n];
        wUp = new WeightMatrix[n];
        wDown = new WeightMatrix[n];
        bq = c.qkvBias() ? new float[n][] : null;
        bk = c.qkvBias() ? new float[n][] : null;
        bv = c.qkvBias() ? new float[n][] : null;
        qNorm = c.qkNorm() ? new float[n][] : null;
        kNorm = c.qkNorm() ? new float[n][] : null;
        for (int l = 0; l < n; l++) {
            String p = "blk." + l + ".";
            attnNorm[l] = vector(f, p + "attn_norm.weight", e);
            wq[l] = matrix(f, p + "attn_q.weight", c.qDim(), e);
            wk[l] = matrix(f, p + "attn_k.weight", c.kvDim(), e);
            wv[l] = matrix(f, p + "attn_v.weight", c.kvDim(), e);
            wo[l] = matrix(f, p + "attn_output.weight", e, c.qDim());
            if (c.qkvBias()) {
                bq[l] = vector(f, p + "attn_q.bias", c.qDim());
                bk[l] = vector(f, p + "attn_k.bias", c.kvDim());
                bv[l] = vector(f, p + "attn_v.bias", c.kvDim());
            }
            if (c.qkNorm()) {
                qNorm[l] = vector(f, p + "attn_q_norm.weight", c.headDim());
                kNorm[l] = vector(f, p + "attn_k_norm.weight", c.headDim());
            }
            ffnNorm[l] = vector(f, p + "ffn_norm.weight", e);
            wGate[l] = matrix(f, p + "ffn_gate.weight", c.feedForward(), e);
            wUp[l] = matrix(f, p + "ffn_up.weight", c.feedForward(), e);
            wDown[l] = matrix(f, p + "ffn_down.weight", e, c.feedForward());
        }
        ropeFreqFactors =
                f.tensorOrNull("rope_freqs.weight") != null ? vector(f, "rope_freqs.weight", c.ropeDim() / 2) : null;
    }

    private static WeightMatrix matrix(GgufFile f, String name, int rows, int cols) {
        GgufTensor t = f.tensor(name);
        if (t.dims().length != 2 || t.dims()[0] != cols || t.dims()[1] != rows) {
            throw f.bad(
                    "tensor '" + name + "' dims",
                    "expected [" + cols + ", " + rows + "], found " + Arrays.toString(t.dims()));
        }
        return new WeightMatrix(t);
    }

    private static float[] vector(GgufFile f, String name, int size) {
        GgufTensor t = f.tensor(name);
        if (t.elementCount() != size) {
            throw f.bad(
                    "tensor '" + name + "' dims", "expected " + size + " elements, found " + Arrays.toString(t.dims()));
        }
        if (t.type() != GgmlType.F32 && t.type() != GgmlType.F16 && t.type() != GgmlType.BF16) {
            throw f.bad("tensor '" + name + "' type", "expected F32, F16 or BF16 for a vector, found " + t.type());
        }
        float[] v = new float[size];
        new WeightMatrix(name, t.type(), t.data(), 1, size).dequantizeRow(0, v, 0);
        return v;
    }
}
