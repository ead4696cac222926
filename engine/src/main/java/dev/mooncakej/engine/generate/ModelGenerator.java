package dev.mooncakej.engine.generate;

import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufWriter;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * Writes a valid GGUF model with seeded random weights, a small byte-level BPE vocabulary learnt
 * from a built-in text, and a ChatML chat template, so tests and the default setup need no download.
 *
 * <ul>
 *   <li>{@code tiny}: 2 layers, width 64, 4 heads (2 KV heads), F32, separate output: for unit tests;</li>
 *   <li>{@code small}: 8 layers, width 512, 8 heads (4 KV heads), Q8_0, separate output: for benchmarks.</li>
 * </ul>
 * The same seed gives the same file, byte for byte.
 */
public final class ModelGenerator {

    public enum Preset {
        TINY,
        /** As tiny, but 256 wide (feed-forward 768), so every matrix can take a K-quant; Q4_K_M. */
        TINY_K,
        SMALL
    }

    /**
     * What to generate; {@link #preset(Preset)} fills the defaults.
     *
     * @param headDim     each attention head's width; 0 for embedding / heads (Qwen3 files set it apart)
     * @param ropeScaling {@code none}, or {@code llama3}: Llama 3.1's frequency scaling, written as the
     *                    {@code rope_freqs.weight} tensor the way llama.cpp's converter does
     * @param vocab       a Hugging Face tokenizer.json whose vocabulary and chat template the model takes,
     *                    or null for one learnt from the built-in text
     */
    public record Spec(
            String name,
            String architecture,
            int embedding,
            int layers,
            int heads,
            int kvHeads,
            int feedForward,
            int contextLength,
            int merges,
            GgmlType weightType,
            boolean tiedOutput,
            long seed,
            String tokenizer,
            int headDim,
            String ropeScaling,
            Path vocab) {
        public Spec withArchitecture(String arch) {
            return new Spec(
                    name,
                    arch,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    weightType,
                    tiedOutput,
                    seed,
                    tokenizer,
                    headDim,
                    ropeScaling,
                    vocab);
        }

        public Spec withWeightType(GgmlType t) {
            return new Spec(
                    name,
                    architecture,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    t,
                    tiedOutput,
                    seed,
                    tokenizer,
                    headDim,
                    ropeScaling,
                    vocab);
        }

        public Spec withSeed(long s) {
            return new Spec(
                    name,
                    architecture,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    weightType,
                    tiedOutput,
                    s,
                    tokenizer,
                    headDim,
                    ropeScaling,
                    vocab);
        }

        /** {@code gpt2} (byte-level BPE, the default) or {@code llama} (SentencePiece with byte fallback). */
        public Spec withTokenizer(String tok) {
            return new Spec(
                    name,
                    architecture,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    weightType,
                    tiedOutput,
                    seed,
                    tok,
                    headDim,
                    ropeScaling,
                    vocab);
        }

        public Spec withTiedOutput(boolean tied) {
            return new Spec(
                    name,
                    architecture,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    weightType,
                    tied,
                    seed,
                    tokenizer,
                    headDim,
                    ropeScaling,
                    vocab);
        }

        public Spec withHeadDim(int hd) {
            return new Spec(
                    name,
                    architecture,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    weightType,
                    tiedOutput,
                    seed,
                    tokenizer,
                    hd,
                    ropeScaling,
                    vocab);
        }

        /** {@code none} or {@code llama3}. */
        public Spec withRopeScaling(String scaling) {
            return new Spec(
                    name,
                    architecture,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    weightType,
                    tiedOutput,
                    seed,
                    tokenizer,
                    headDim,
                    scaling,
                    vocab);
        }

        /** A real model's vocabulary and chat template from its Hugging Face tokenizer.json ({@link HfVocabulary}). */
        public Spec withVocab(Path tokenizerJson) {
            return new Spec(
                    name,
                    architecture,
                    embedding,
                    layers,
                    heads,
                    kvHeads,
                    feedForward,
                    contextLength,
                    merges,
                    weightType,
                    tiedOutput,
                    seed,
                    tokenizer, // unused with a vocabulary file: its tokenizer.json says which kind it is
                    headDim,
                    ropeScaling,
                    tokenizerJson);
        }

        /** The width of one attention head. */
        public int headWidth() {
            return headDim > 0 ? headDim : embedding / heads;
        }
    }

    public static final String CHAT_TEMPLATE =
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                    + "'<|im_end|>' + '\\n' }}{% endfor %}"
                    + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    public static final String[] SPECIAL_TOKENS = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

    private ModelGenerator() {}

    public static Spec preset(Preset p) {
        return switch (p) {
            case TINY ->
                new Spec(
                        "mooncakej-tiny",
                        "llama",
                        64,
                        2,
                        4,
                        2,
                        192,
                        2048,
                        256,
                        GgmlType.F32,
                        false,
                        42,
                        "gpt2",
                        0,
                        "none",
                        null);
            case TINY_K ->
                new Spec(
                        "mooncakej-tiny-k",
                        "llama",
                        256,
                        2,
                        4,
                        2,
                        768,
                        2048,
                        256,
                        GgmlType.Q4_K,
                        false,
                        42,
                        "gpt2",
                        0,
                        "none",
                        null);
            case SMALL ->
                new Spec(
                        "mooncakej-small",
                        "llama",
                        512,
                        8,
                        8,
                        4,
                        1536,
                        4096,
                        768,
                        GgmlType.Q8_0,
                        false,
                        42,
                        "gpt2",
                        0,
                        "none",
                        null);
        };
    }

    public static void generate(Preset preset, Path out) {
        generate(preset(preset), out);
    }

    public static void generate(Spec s, Path out) {
        generate(s, out, w -> {});
    }

    /** As {@link #generate(Spec, Path)}, letting {@code extra} add metadata or tensors before the file is written. */
    public static void generate(Spec s, Path out, Consumer<GgufWriter> extra) {
        HfVocabulary real = s.vocab() == null ? null : HfVocabulary.read(s.vocab());
        Vocab v = real != null ? null : s.tokenizer().equals("llama") ? sentencePieceVocab(s) : bytePairVocab(s);
        int vocab = real != null ? real.size() : v.tokens.size();
        String a = s.architecture();
        int hd = s.headWidth();

        GgufWriter w = new GgufWriter()
                .putString("general.architecture", a)
                .putString("general.name", s.name())
                .putU32("general.alignment", GgufWriter.ALIGNMENT)
                .putU32(a + ".context_length", s.contextLength())
                .putU32(a + ".embedding_length", s.embedding())
                .putU32(a + ".block_count", s.layers())
                .putU32(a + ".feed_forward_length", s.feedForward())
                .putU32(a + ".attention.head_count", s.heads())
                .putU32(a + ".attention.head_count_kv", s.kvHeads())
                .putF32(a + ".attention.layer_norm_rms_epsilon", 1e-5f)
                .putF32(a + ".rope.freq_base", 10000f)
                .putU32(a + ".rope.dimension_count", hd);
        if (s.headDim() > 0) {
            w.putU32(a + ".attention.key_length", hd).putU32(a + ".attention.value_length", hd);
        }
        if (real != null) putVocabulary(w, real);
        else putVocabulary(w, v, s.tokenizer());

        SplittableRandom rnd = new SplittableRandom(s.seed());
        int e = s.embedding(), ff = s.feedForward(), q = s.heads() * hd, kv = s.kvHeads() * hd;
        GgmlType t = s.weightType();
        // Output logits get a standard deviation of about 3 (rows of std 3/sqrt(E) against a normed state):
        // peaked enough that greedy ties are rare, flat enough that probabilities carry information.
        // A tied output reuses the embedding, so then the embedding takes that scale.
        double outStd = 3.0 / Math.sqrt(e);
        matrix(w, "token_embd.weight", vocab, e, s.tiedOutput() ? outStd : 1.0, t, s.layers(), rnd);
        for (int l = 0; l < s.layers(); l++) {
            String p = "blk." + l + ".";
            vector(w, p + "attn_norm.weight", e, 1.0, 0.1, rnd);
            matrix(w, p + "attn_q.weight", q, e, 1.0 / Math.sqrt(e), t, s.layers(), rnd);
            matrix(w, p + "attn_k.weight", kv, e, 1.0 / Math.sqrt(e), t, s.layers(), rnd);
            matrix(w, p + "attn_v.weight", kv, e, 1.0 / Math.sqrt(e), t, s.layers(), rnd);
            if (a.equals("qwen2")) {
                vector(w, p + "attn_q.bias", q, 0.0, 0.1, rnd);
                vector(w, p + "attn_k.bias", kv, 0.0, 0.1, rnd);
                vector(w, p + "attn_v.bias", kv, 0.0, 0.1, rnd);
            }
            if (a.equals("qwen3")) {
                vector(w, p + "attn_q_norm.weight", hd, 1.0, 0.1, rnd);
                vector(w, p + "attn_k_norm.weight", hd, 1.0, 0.1, rnd);
            }
            matrix(w, p + "attn_output.weight", e, q, 1.0 / Math.sqrt(q), t, s.layers(), rnd);
            vector(w, p + "ffn_norm.weight", e, 1.0, 0.1, rnd);
            matrix(w, p + "ffn_gate.weight", ff, e, 1.0 / Math.sqrt(e), t, s.layers(), rnd);
            matrix(w, p + "ffn_up.weight", ff, e, 1.0 / Math.sqrt(e), t, s.layers(), rnd);
            matrix(w, p + "ffn_down.weight", e, ff, 1.0 / Math.sqrt(ff), t, s.layers(), rnd);
        }
        vector(w, "output_norm.weight", e, 1.0, 0.1, rnd);
        if (!s.tiedOutput()) matrix(w, "output.weight", vocab, e, outStd, t, s.layers(), rnd);
        switch (s.ropeScaling()) {
            case "none" -> {}
            case "llama3" -> {
                float[] f = llama3RopeFactors(hd, 10000.0, 8.0, 1.0, 4.0, LLAMA3_ORIGINAL_CONTEXT);
                w.addTensor(
                        "rope_freqs.weight", new long[] {f.length}, GgmlType.F32, Quantizer.encode(f, GgmlType.F32));
            }
            default ->
                throw new IllegalArgumentException(
                        "rope scaling '" + s.ropeScaling() + "' is not supported; expected none or llama3");
        }
        extra.accept(w);
        w.write(out);
    }

    /**
     * The original context Llama 3.1's scaling is computed for. Meta's models use 8192; a generated model
     * uses 64, so that the positions a test reaches cross every band of the scaling (kept, smoothed and
     * divided) rather than only the few pairs whose wavelengths exceed 8192.
     */
    static final int LLAMA3_ORIGINAL_CONTEXT = 64;

    /**
     * Llama 3.1's {@code rope_type: llama3} frequency divisors, one per rotated pair: wavelengths shorter
     * than {@code original/high} are kept, longer than {@code original/low} divided by {@code factor},
     * and smoothly interpolated between (Meta's reference and Hugging Face's {@code rope_scaling} define
     * it; llama.cpp reads the result as {@code rope_freqs.weight}).
     */
    static float[] llama3RopeFactors(int headDim, double base, double factor, double low, double high, int original) {
        float[] out = new float[headDim / 2];
        double lowWavelen = original / low, highWavelen = original / high;
        for (int i = 0; i < out.length; i++) {
            double freq = 1.0 / Math.pow(base, (2.0 * i) / headDim);
            double wavelen = 2 * Math.PI / freq;
            if (wavelen < highWavelen) out[i] = 1f;
            else if (wavelen > lowWavelen) out[i] = (float) factor;
            else {
                double smooth = (original / wavelen - low) / (high - low);
                out[i] = (float) (1.0 / ((1 - smooth) / factor + smooth));
            }
        }
        return out;
    }

    private static void putVocabulary(GgufWriter w, Vocab v, String tokenizer) {
        int vocab = v.tokens.size();
        w.putString("tokenizer.ggml.model", tokenizer)
                .putStrings("tokenizer.ggml.tokens", v.tokens.toArray(new String[0]))
                .putI32s(
                        "tokenizer.ggml.token_type",
                        v.types.stream().mapToInt(Integer::intValue).toArray());
        if (v.merges != null) {
            w.putString("tokenizer.ggml.pre", "gpt-2")
                    .putStrings("tokenizer.ggml.merges", v.merges.toArray(new String[0]));
        } else {
            float[] sc = new float[vocab];
            for (int i = 0; i < vocab; i++) sc[i] = v.scores.get(i);
            w.putF32s("tokenizer.ggml.scores", sc).putU32("tokenizer.ggml.unknown_token_id", v.unknown);
        }
        w.putU32("tokenizer.ggml.bos_token_id", v.bos)
                .putU32("tokenizer.ggml.eos_token_id", v.eos)
                .putU32("tokenizer.ggml.eot_token_id", v.imEnd)
                .putU32("tokenizer.ggml.padding_token_id", v.eos)
                .putBool("tokenizer.ggml.add_bos_token", v.merges == null)
                .putString("tokenizer.chat_template", CHAT_TEMPLATE);
    }

    /** A real vocabulary, written as llama.cpp's converter writes it. */
    private static void putVocabulary(GgufWriter w, HfVocabulary v) {
        w.putString("tokenizer.ggml.model", v.model)
                .putStrings("tokenizer.ggml.tokens", v.tokens)
                .putI32s("tokenizer.ggml.token_type", v.types);
        if (v.merges != null) {
            w.putString("tokenizer.ggml.pre", v.pre).putStrings("tokenizer.ggml.merges", v.merges);
        } else {
            w.putF32s("tokenizer.ggml.scores", v.scores).putBool("tokenizer.ggml.add_space_prefix", true);
            if (v.unknown >= 0) w.putU32("tokenizer.ggml.unknown_token_id", v.unknown);
        }
        if (v.bos >= 0) w.putU32("tokenizer.ggml.bos_token_id", v.bos);
        if (v.eos >= 0) w.putU32("tokenizer.ggml.eos_token_id", v.eos);
        if (v.eot >= 0) w.putU32("tokenizer.ggml.eot_token_id", v.eot);
        w.putBool("tokenizer.ggml.add_bos_token", v.addBos);
        if (v.chatTemplate != null) w.putString("tokenizer.chat_template", v.chatTemplate);
    }

    /** A vocabulary with its token types, and merges (BPE) or scores (SentencePiece). */
    private static final class Vocab {
        final List<String> tokens = new ArrayList<>();
        final List<Integer> types = new ArrayList<>();
        final List<Float> scores = new ArrayList<>();
        List<String> merges;
        int bos, eos, imEnd, unknown;

        int add(String token, int type, float score) {
            tokens.add(token);
            types.add(type);
            scores.add(score);
            return tokens.size() - 1;
        }
    }

    private static Vocab bytePairVocab(Spec s) {
        BpeTrainer bpe = new BpeTrainer(corpus(), s.merges());
        Vocab v = new Vocab();
        for (String t : bpe.tokens) v.add(t, 1, 0f);
        v.merges = bpe.merges;
        v.eos = v.bos = v.add(SPECIAL_TOKENS[0], 3, 0f);
        v.add(SPECIAL_TOKENS[1], 3, 0f);
        v.imEnd = v.add(SPECIAL_TOKENS[2], 3, 0f);
        v.unknown = -1;
        return v;
    }

    private static Vocab sentencePieceVocab(Spec s) {
        Vocab v = new Vocab();
        v.unknown = v.add("<unk>", 2, 0f);
        v.bos = v.add("<s>", 3, 0f);
        v.eos = v.add("</s>", 3, 0f);
        v.add(SPECIAL_TOKENS[1], 3, 0f);
        v.imEnd = v.add(SPECIAL_TOKENS[2], 3, 0f);
        for (int b = 0; b < 256; b++) v.add(String.format("<0x%02X>", b), 6, 0f);
        SentencePieceTrainer spm = new SentencePieceTrainer(corpus(), s.merges());
        Set<String> seen = new HashSet<>(v.tokens);
        for (int i = 0; i < spm.pieces.size(); i++) {
            if (seen.add(spm.pieces.get(i))) v.add(spm.pieces.get(i), 1, spm.scores.get(i));
        }
        return v;
    }

    /**
     * The type a matrix gets. With Q4_K or Q5_K as the model's type, llama.cpp's {@code _M} mix: the
     * output and, in the layers {@link #moreBits} picks, {@code attn_v} and {@code ffn_down} are Q6_K.
     * A K-quant needs rows whose length is a multiple of 256; a shorter one is Q8_0 instead (llama.cpp
     * falls back the same way).
     */
    static GgmlType typeFor(GgmlType base, String name, int cols, int layers) {
        GgmlType t = base;
        if (base == GgmlType.Q4_K || base == GgmlType.Q5_K) {
            if (name.equals("output.weight")) t = GgmlType.Q6_K;
            else if (name.endsWith(".attn_v.weight") || name.endsWith(".ffn_down.weight")) {
                if (moreBits(Integer.parseInt(name.split("\\.")[1]), layers)) t = GgmlType.Q6_K;
            }
        }
        return t.blockSize() == 256 && cols % 256 != 0 ? GgmlType.Q8_0 : t;
    }

    /** llama.cpp's {@code use_more_bits}: the first and last eighth of the layers, and every third between. */
    static boolean moreBits(int layer, int layers) {
        return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
    }

    private static void matrix(
            GgufWriter w,
            String name,
            int rows,
            int cols,
            double std,
            GgmlType base,
            int layers,
            SplittableRandom rnd) {
        GgmlType t = typeFor(base, name, cols, layers);
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * std);
        w.addTensor(name, new long[] {cols, rows}, t, Quantizer.encode(v, t));
    }

    private static void vector(GgufWriter w, String name, int n, double mean, double std, SplittableRandom rnd) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (mean + rnd.nextGaussian() * std);
        w.addTensor(name, new long[] {n}, GgmlType.F32, Quantizer.encode(v, GgmlType.F32));
    }

    static String corpus() {
        try (InputStream in = ModelGenerator.class.getResourceAsStream("corpus.txt")) {
            if (in == null) throw new IllegalStateException("corpus.txt is missing from the engine jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
    }
}
