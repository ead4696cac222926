package dev.mooncakej.kvcache.cost;

/**
 * Time a model takes on some hardware, as a function of the work (the simulated engine sleeps it, the
 * scheduler's estimators start from it).
 *
 * <pre>
 * prefill(n, p)    = prefillBase + perToken * (n - p) + perTokenSquared * (n^2 - p^2)
 *                     (n input tokens, p of them cached)
 * decodeStep(b, c) = decodeBase + perSequence * b + perContextToken * c
 *                     (b sequences, c context tokens in all)
 * </pre>
 *
 * @param kvBytesPerToken  bytes of K and V of one token over all layers
 */
public record CostProfile(
        String name,
        double prefillBase,
        double prefillPerToken,
        double prefillPerTokenSquared,
        double decodeBase,
        double decodePerSequence,
        double decodePerContextToken,
        long kvBytesPerToken) {

    public CostProfile {
        if (prefillBase < 0
                || prefillPerToken < 0
                || prefillPerTokenSquared < 0
                || decodeBase < 0
                || decodePerSequence < 0
                || decodePerContextToken < 0) {
            throw new IllegalArgumentException("cost profile '" + name + "': every coefficient must be >= 0");
        }
        if (kvBytesPerToken <= 0)
            throw new IllegalArgumentException(
                    "cost profile '" + name + "': kv bytes per token must be > 0, got " + kvBytesPerToken);
    }

    /** Seconds to prefill {@code input} tokens of which the first {@code cached} have their KV already. */
    public double prefillSeconds(int input, int cached) {
        if (cached < 0 || cached > input)
            throw new IllegalArgumentException("cached tokens " + cached + " must be in [0, " + input + "]");
        double n = input, p = cached;
        return prefillBase + prefillPerToken * (n - p) + prefillPerTokenSquared * (n * n - p * p);
    }

    /** Seconds for one decode step of {@code batch} sequences holding {@code contextTokens} tokens in all. */
    public double decodeStepSeconds(int batch, long contextTokens) {
        if (batch <= 0) return 0;
        return decodeBase + decodePerSequence * batch + decodePerContextToken * contextTokens;
    }

    /**
     * LLaMA3-70B on one 8xA800 node, from the Mooncake paper's Table 1 (FAST'25): l = 80 layers,
     * d = 8192, a = 4, b = 22, gqa = 8, s = 2 bytes, G = 8 x 312 TFLOPS, with an assumed model FLOPs
     * utilisation of {@value #ASSUMED_MFU}; the prefill FLOPs are {@code l (a n^2 d + b n d^2)}, so
     * {@code perToken = l b d^2 / (G MFU)} and {@code perTokenSquared = l a d / (G MFU)}. KV is
     * {@code l (2 d / gqa) s} = 320 KiB per token. Decode is bound by memory: every step reads the
     * weights (70e9 x 2 bytes) and each sequence's KV from 8 x 2.039 TB/s of HBM at an assumed
     * memory-bandwidth utilisation of {@value #ASSUMED_MBU}, plus {@code 2 x 70e9} FLOPs per sequence.
     */
    public static CostProfile llama3_70bOn8xA800() {
        double l = 80, d = 8192, a = 4, b = 22, gqa = 8, s = 2;
        double flops = 8 * 312e12 * ASSUMED_MFU;
        double hbm = 8 * 2.039e12 * ASSUMED_MBU;
        long kvPerToken = (long) (l * (2 * d / gqa) * s);
        return new CostProfile(
                "llama3-70b-8xa800",
                0.005,
                l * b * d * d / flops,
                l * a * d / flops,
                70e9 * 2 / hbm,
                2 * 70e9 / flops,
                kvPerToken / hbm,
                kvPerToken);
    }

    /** Model FLOPs utilisation assumed for prefill on A800 (a typical figure for large-batch prefill). */
    public static final double ASSUMED_MFU = 0.4;

    /**
     * Memory-bandwidth utilisation (MBU) assumed for decode: the share of peak HBM bandwidth a serving
     * stack turns into weight and KV reads. Optimised CUDA stacks (vLLM, TensorRT-LLM) run at about 70
     * to 85% (the model-bandwidth-utilisation figure as serving benchmarks report it); 0.75 is taken,
     * not the 100% of a roofline, which made decode (and so P/D's decode-bound capacity) look cheaper
     * than any real deployment.
     */
    public static final double ASSUMED_MBU = 0.75;
}
