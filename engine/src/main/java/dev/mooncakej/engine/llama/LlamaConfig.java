package dev.mooncakej.engine.llama;

import dev.mooncakej.engine.gguf.GgufFile;
import java.util.Set;

/**
 * Hyper-parameters of a Llama-family model, read from GGUF metadata under the architecture's prefix.
 *
 * @param architecture    {@code llama} or {@code qwen2}
 * @param ropeNeox        RoPE rotates pairs (i, i + ropeDim/2) (qwen2) rather than adjacent pairs (2i, 2i+1) (llama)
 * @param ropeFreqScale   linear RoPE scaling: positions are multiplied by this (1 / scaling factor)
 */
public record LlamaConfig(
        String architecture,
        int embedding,
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        int feedForward,
        int vocab,
        int contextLength,
        float rmsEps,
        float ropeBase,
        float ropeFreqScale,
        int ropeDim,
        boolean ropeNeox,
        boolean qkvBias) {

    public static final Set<String> ARCHITECTURES = Set.of("llama", "qwen2");

    public static LlamaConfig from(GgufFile f) {
        String arch = f.getString("general.architecture");
        if (!ARCHITECTURES.contains(arch)) {
            throw f.bad(
                    "general.architecture",
                    "architecture '" + arch + "' is not supported; expected one of " + ARCHITECTURES);
        }
        int e = f.getInt(arch + ".embedding_length", 1, 1 << 16);
        int layers = f.getInt(arch + ".block_count", 1, 1024);
        int heads = f.getInt(arch + ".attention.head_count", 1, 1024);
        int kvHeads = f.getInt(arch + ".attention.head_count_kv", 1, heads, heads);
        if (heads % kvHeads != 0) {
            throw f.bad(
                    arch + ".attention.head_count_kv",
                    "expected a divisor of head_count " + heads + ", found " + kvHeads);
        }
        int headDim = f.getInt(arch + ".attention.key_length", 1, 4096, e / heads);
        if (e % heads != 0 && !f.has(arch + ".attention.key_length")) {
            throw f.bad(arch + ".embedding_length", "expected a multiple of head_count " + heads + ", found " + e);
        }
        int ff = f.getInt(arch + ".feed_forward_length", 1, 1 << 20);
        int ctx = f.getInt(arch + ".context_length", 1, 1 << 24);
        float eps = f.getFloat(arch + ".attention.layer_norm_rms_epsilon");
        if (!(eps > 0 && eps < 1))
            throw f.bad(arch + ".attention.layer_norm_rms_epsilon", "expected a small positive number, found " + eps);
        float base = f.getFloat(arch + ".rope.freq_base", 10000f);
        if (!(base > 1)) throw f.bad(arch + ".rope.freq_base", "expected a number > 1, found " + base);
        float freqScale = 1f;
        String scalingType = f.has(arch + ".rope.scaling.type") ? f.getString(arch + ".rope.scaling.type") : "none";
        switch (scalingType) {
            case "none" -> {}
            case "linear" -> {
                float factor = f.getFloat(arch + ".rope.scaling.factor", 1f);
                if (!(factor > 0))
                    throw f.bad(arch + ".rope.scaling.factor", "expected a positive number, found " + factor);
                freqScale = 1f / factor;
            }
            default ->
                throw f.bad(arch + ".rope.scaling.type", "expected 'none' or 'linear', found '" + scalingType + "'");
        }
        int ropeDim = f.getInt(arch + ".rope.dimension_count", 2, headDim, headDim);
        if (ropeDim % 2 != 0) throw f.bad(arch + ".rope.dimension_count", "expected an even number, found " + ropeDim);
        String[] tokens = f.getArray("tokenizer.ggml.tokens", String[].class);
        int vocab = tokens.length;
        if (f.has(arch + ".vocab_size")) vocab = f.getInt(arch + ".vocab_size", 1, 1 << 24);
        boolean qwen = arch.equals("qwen2");
        return new LlamaConfig(
                arch, e, layers, heads, kvHeads, headDim, ff, vocab, ctx, eps, base, freqScale, ropeDim, qwen, qwen);
    }

    public int qDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }
}
