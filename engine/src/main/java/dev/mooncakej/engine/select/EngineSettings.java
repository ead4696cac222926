package dev.mooncakej.engine.select;

import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.sim.SimulatedEngine;
import dev.mooncakej.engine.sim.Sleeper;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.kvcache.cost.CostProfile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Locale;
import java.util.function.LongFunction;

/**
 * Which engine a worker runs and how, validated once ({@code mooncakej.prefill.engine},
 * {@code mooncakej.decode.engine} and the {@code sim-*} keys): {@code llama}, the built-in engine on
 * the GGUF model, or {@code simulated}, which sleeps the time a cost profile gives for the work (scaled
 * by {@code simTimeScale}), streams deterministic tokens and fills the KV with a checkable pattern, so
 * a cluster of simulated workers serves real requests at cluster scale on one machine. The simulated
 * engine takes its tokenizer, chat template and context length from the same GGUF file.
 *
 * @param keyPrefix  for messages, e.g. {@code mooncakej.decode.}
 * @param maxRows    rows of one forward pass: the prefill chunk or the decode batch
 * @param simReply   a scripted answer the simulated engine gives every request (tool-call parsing
 *                   tests: each family's syntax as a model writes it), or null for its hash-derived tokens
 */
public record EngineSettings(
        String keyPrefix,
        String kind,
        Path model,
        int blockTokens,
        int kvBlocks,
        int maxRows,
        int threads,
        String simProfile,
        double simTimeScale,
        String simReply) {
    public static final String LLAMA = "llama";
    public static final String SIMULATED = "simulated";

    public EngineSettings {
        kind = kind == null ? LLAMA : kind.toLowerCase(Locale.ROOT);
        if (!kind.equals(LLAMA) && !kind.equals(SIMULATED))
            throw new IllegalArgumentException(keyPrefix + "engine=" + kind + ": expected llama or simulated");
        simProfile = simProfile == null ? "llama3-70b-8xa800" : simProfile;
        profile(keyPrefix, simProfile);
        if (simReply != null && simReply.isEmpty()) simReply = null;
        if (simReply != null && !kind.equals(SIMULATED))
            throw new IllegalArgumentException(keyPrefix + "sim-reply is set, but " + keyPrefix + "engine=" + kind
                    + ": a scripted answer is for the simulated engine only");
        if (!(simTimeScale >= 0) || simTimeScale > 1000)
            throw new IllegalArgumentException(keyPrefix + "sim-time-scale=" + simTimeScale
                    + ": expected 0..1000 (1 = the profile's real time, 0.01 = 100 times faster)");
    }

    /** The cost profiles a simulated engine can take, by name. */
    public static CostProfile profile(String keyPrefix, String name) {
        return shape(keyPrefix, name).cost();
    }

    /**
     * A modelled model and hardware: its cost profile and the shape the simulated engine takes from it
     * (layers, context length; KV bytes per token are the profile's). FAST Table 1's LLaMA3-70B: 80
     * layers, a 128k context (the traces' longest setting, REFERENCE.md).
     */
    public record SimShape(CostProfile cost, int layers, int contextLength) {}

    public static SimShape shape(String keyPrefix, String name) {
        return switch (name) {
            case "llama3-70b-8xa800" -> new SimShape(CostProfile.llama3_70bOn8xA800(), 80, 131_072);
            default ->
                throw new IllegalArgumentException(keyPrefix + "sim-profile=" + name + ": expected llama3-70b-8xa800");
        };
    }

    /**
     * Bytes per token the simulated engine really stores and moves: 16 per layer (the checkable
     * pattern), not the profile's (320 KiB for LLaMA3-70B would not fit this machine): transfers carry
     * {@code 16 x layers / profile bytes} of the modelled bytes, and the modelled KV capacity is counted
     * in tokens ({@code kv-blocks}).
     */
    public static long storedBytesPerToken(SimShape s) {
        return 16L * s.layers();
    }

    /** Builds the engine with its KV slab from {@code kvMemory} (the worker's transfer segment). */
    public InferenceEngine create(LongFunction<MemorySegment> kvMemory) {
        if (kind.equals(LLAMA))
            return new LlamaEngine(new LlamaEngine.Config(model, blockTokens, kvBlocks, maxRows, threads), kvMemory);
        SimShape shape = shape(keyPrefix, simProfile);
        int context = shape.contextLength();
        // default KV: one modelled context (the longest prompt fits), 168 MB of slab at 80 layers; a modelled
        // capacity (8xA800: about 1.6M tokens) is set with kv-blocks (./mooncakej up --kv-blocks)
        int blocks = kvBlocks > 0 ? kvBlocks : Math.max(1, context / blockTokens);
        SimulatedEngine.Config c = new SimulatedEngine.Config(
                model,
                shape.cost(),
                simTimeScale,
                shape.layers(),
                storedBytesPerToken(shape),
                blockTokens,
                blocks,
                context,
                simReply);
        return new SimulatedEngine(c, Sleeper.REAL, kvMemory);
    }
}
