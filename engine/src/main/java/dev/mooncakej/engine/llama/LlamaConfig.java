package dev.mooncakej.engine.llama;

import dev.mooncakej.engine.gguf.GgufFile;
import java.util.Set;

/**
 * Hyper-parameters of a Llama-family model, read from GGUF metadata under the architecture's prefix.
 *
 * <p>Llama 3.1's frequency scaling ({@code rope_type: llama3}) arrives as the {@code rope_freqs.weight}
 * tensor (one divisor per rotated pair), as llama.cpp's converter writes it; see {@link LlamaWeights}.
 *
 * @param architecture    {@code llama} (also Mistral and Llama 3.x), {@code qwen2} or {@code qwen3}
 * @param ropeNeox        RoPE rotates pairs (i, i + ropeDim/2) (qwen2, qwen3) rather than adjacent pairs (2i, 2i+1)
 * @param ropeFreqScale   linear RoPE scaling: positions are multiplied by this (1 / scaling factor)
 * @param qkvBias         Q, K and V projections have biases (qwen2)
 * @param qkNorm          each head of Q and K is RMS-normed with its own weight before RoPE (qwen3)
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
        boolean qkvBias,
        boolean qkNorm) {

    public static final Set<String> ARCHITECTURES = Set.of("llama", "qwen2", "qwen3");

    public static LlamaConfig from(GgufFile f) {
        String arch = f.getString("general.architecture");
        if (!ARCHITECTURES.contains(arch)) {
            throw f.bad(
                    "general.architecture",
                    "architecture '" + arch + "' is not supported; expected one of " + ARCHITECTURES);
        }
        refuseUnsupportedFeatures(f, arch);
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
        if (f.has(arch + ".attention.value_length") && f.getInt(arch + ".attention.value_length", 1, 4096) != headDim) {
            throw f.bad(
                    arch + ".attention.value_length",
                    "expected the key length " + headDim + " (different key and value head sizes are not supported)");
        }
        boolean neox = !arch.equals("llama");
        return new LlamaConfig(
                arch,
                e,
                layers,
                heads,
                kvHeads,
                headDim,
                ff,
                vocab,
                ctx,
                eps,
                base,
                freqScale,
                ropeDim,
                neox,
                arch.equals("qwen2"),
                arch.equals("qwen3"));
    }

    /**
     * Variants of a supported architecture this engine would run wrongly, refused by name rather than
     * served with the wrong numbers: mixture of experts (Mixtral and others are {@code llama} files with
     * {@code expert_count}) and sliding-window attention.
     */
    private static void refuseUnsupportedFeatures(GgufFile f, String arch) {
        String experts = arch + ".expert_count";
        if (f.has(experts) && f.getInt(experts, 0, Integer.MAX_VALUE) > 0) {
            throw f.bad(
                    experts,
                    "mixture-of-experts models are not supported (" + experts + " = "
                            + f.getInt(experts, 0, Integer.MAX_VALUE) + "); expected a dense model");
        }
        String window = arch + ".attention.sliding_window";
        if (f.has(window)) {
            throw f.bad(
                    window,
                    "sliding-window attention is not supported (" + window + " = "
                            + f.metadata().get(window) + "); expected a model with full attention");
        }
    }

    public int qDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }
}
