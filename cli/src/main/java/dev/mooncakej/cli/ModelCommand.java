package dev.mooncakej.cli;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.llama.ModelCheck;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.sampling.TextGenerator;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import java.lang.reflect.Array;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
        name = "model",
        description = "Generate, inspect and run GGUF models.",
        subcommands = {ModelCommand.Generate.class, ModelCommand.Info.class, ModelCommand.Run.class})
final class ModelCommand {

    @Command(name = "generate", description = "Write a GGUF model with seeded random weights (nothing is downloaded).")
    static final class Generate implements Runnable {
        @Option(
                names = "--preset",
                defaultValue = "tiny",
                description =
                        "tiny (2 layers, width 64, F32), tiny-k (2 layers, width 256, Q4_K_M) or small (8 layers, "
                                + "width 512, Q8_0)")
        String preset;

        @Option(names = "--out", required = true, description = "output .gguf file")
        Path out;

        @Option(
                names = "--arch",
                description = "llama (also Mistral, Llama 3.x), qwen2 (QKV biases) or qwen3 (per-head Q/K norm, "
                        + "heads twice as wide as embedding/heads); default: llama")
        String arch;

        @Option(
                names = "--rope-scaling",
                description = "none (default) or llama3: Llama 3.1's frequency scaling as a rope_freqs tensor")
        String ropeScaling;

        @Option(
                names = {"--quant", "--type"},
                description = "weights: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q6_k, q5_k_m or "
                        + "q4_k_m (the _m mixes give output, "
                        + "and attn_v and ffn_down in some layers, Q6_K as llama.cpp does; default: the preset's)")
        String type;

        @Option(names = "--seed", description = "random seed (default 42)")
        Long seed;

        @Option(names = "--tokenizer", description = "gpt2 (byte-level BPE, default) or llama (SentencePiece)")
        String tokenizer;

        @Option(
                names = "--vocab",
                description = "a real model's Hugging Face tokenizer.json (or its folder, with tokenizer_config.json): "
                        + "the model takes that vocabulary, its special tokens and its chat template "
                        + "(Llama 3 and Qwen byte-level BPE, Llama 2 / Mistral SentencePiece)")
        Path vocab;

        @Override
        public void run() {
            ModelGenerator.Preset p = switch (preset.toLowerCase(Locale.ROOT)) {
                case "tiny" -> ModelGenerator.Preset.TINY;
                case "tiny-k" -> ModelGenerator.Preset.TINY_K;
                case "small" -> ModelGenerator.Preset.SMALL;
                default ->
                    throw new IllegalArgumentException(
                            "--preset '" + preset + "' is not known; expected tiny, tiny-k or small");
            };
            ModelGenerator.Spec s = ModelGenerator.preset(p);
            if (arch != null) {
                switch (arch) {
                    case "llama", "qwen2" -> s = s.withArchitecture(arch);
                    case "qwen3" -> s = s.withArchitecture(arch).withHeadDim(2 * s.embedding() / s.heads());
                    default ->
                        throw new IllegalArgumentException(
                                "--arch '" + arch + "' is not known; expected llama, qwen2 or qwen3");
                }
            }
            if (ropeScaling != null) {
                if (!ropeScaling.equals("none") && !ropeScaling.equals("llama3"))
                    throw new IllegalArgumentException(
                            "--rope-scaling '" + ropeScaling + "' is not known; expected none or llama3");
                s = s.withRopeScaling(ropeScaling);
            }
            if (type != null) s = s.withWeightType(quant(type));
            if (seed != null) s = s.withSeed(seed);
            if (tokenizer != null) {
                if (!tokenizer.equals("gpt2") && !tokenizer.equals("llama"))
                    throw new IllegalArgumentException(
                            "--tokenizer '" + tokenizer + "' is not known; expected gpt2 or llama");
                s = s.withTokenizer(tokenizer);
            }
            if (vocab != null) {
                if (tokenizer != null)
                    throw new IllegalArgumentException("--tokenizer and --vocab exclude each other: --vocab " + vocab
                            + " brings its own tokenizer");
                s = s.withVocab(vocab);
            }
            long t0 = System.nanoTime();
            System.err.printf(
                    "generating %s (%s, %d layers, width %d, %s) ...%n",
                    s.name(), s.architecture(), s.layers(), s.embedding(), s.weightType());
            ModelGenerator.generate(s, out);
            System.out.printf(
                    "wrote %s (%.1f MB) in %.1f s%n", out, out.toFile().length() / 1e6, (System.nanoTime() - t0) / 1e9);
        }
    }

    /** A {@code --quant} name as the model's weight type ({@code q4_k_m}: Q4_K with the _M mix). */
    static GgmlType quant(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "f32" -> GgmlType.F32;
            case "f16" -> GgmlType.F16;
            case "bf16" -> GgmlType.BF16;
            case "q8_0" -> GgmlType.Q8_0;
            case "q4_0" -> GgmlType.Q4_0;
            case "q4_1" -> GgmlType.Q4_1;
            case "q5_0" -> GgmlType.Q5_0;
            case "q5_1" -> GgmlType.Q5_1;
            case "q2_k" -> GgmlType.Q2_K;
            case "q3_k" -> GgmlType.Q3_K;
            case "q6_k" -> GgmlType.Q6_K;
            case "q5_k_m", "q5_k" -> GgmlType.Q5_K;
            case "q4_k_m", "q4_k" -> GgmlType.Q4_K;
            default ->
                throw new IllegalArgumentException("--quant '" + name
                        + "' is not known; expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q6_k, "
                        + "q5_k_m or q4_k_m");
        };
    }

    @Command(
            name = "info",
            description = "Say whether a GGUF file will load and why not (architecture, tensor types, tokenizer, "
                    + "template, context, KV bytes per token); --all adds its metadata and tensors.")
    static final class Info implements Callable<Integer> {
        @Parameters(description = "model file")
        Path file;

        @Option(names = "--all", description = "also print every metadata key and tensor")
        boolean all;

        @Override
        public Integer call() {
            ModelCheck.Report r = ModelCheck.check(file);
            System.out.printf("%s: %s%n", file, r.loads() ? "loads" : "will not load");
            for (String p : r.problems()) System.out.printf("  problem: %s%n", p);
            if (r.architecture() != null)
                System.out.printf(
                        "  architecture %s, %d layers, width %d, context %d%n",
                        r.architecture(), r.layers(), r.embedding(), r.contextLength());
            if (!r.tensorTypes().isEmpty()) System.out.printf("  tensor types: %s%n", r.tensorTypes());
            if (r.tokenizer() != null)
                System.out.printf(
                        "  tokenizer %s%s, chat template %s%n",
                        r.tokenizer(),
                        r.preTokenizer() == null ? "" : " (pre-tokenizer " + r.preTokenizer() + ")",
                        r.chatTemplate() ? "found" : "none");
            if (r.kvBytesPerToken() > 0)
                System.out.printf("  KV cache: %d bytes per token (F32)%n", r.kvBytesPerToken());
            if (all && r.loads()) dump();
            return r.loads() ? 0 : 1;
        }

        private void dump() {
            try (GgufFile f = GgufFile.open(file)) {
                System.out.printf(
                        "%s: GGUF v%d, %d metadata keys, %d tensors, %.1f MB%n",
                        file, f.version(), f.metadata().size(), f.tensors().size(), f.fileSize() / 1e6);
                f.metadata().forEach((k, v) -> {
                    String s = v.getClass().isArray()
                            ? v.getClass().getComponentType().getSimpleName() + "[" + Array.getLength(v) + "]"
                            : String.valueOf(v);
                    if (s.length() > 100) s = s.substring(0, 100) + "...";
                    System.out.printf("  %-45s %s%n", k, s.replace("\n", "\\n"));
                });
                f.tensors()
                        .values()
                        .forEach(t ->
                                System.out.printf("  %-30s %-5s %s%n", t.name(), t.type(), Arrays.toString(t.dims())));
            }
        }
    }

    @Command(name = "run", description = "Complete a prompt with the built-in engine (one sequence, no server).")
    static final class Run implements Runnable {
        @Option(names = "--model", required = true)
        Path model;

        @Option(names = "--prompt", required = true)
        String prompt;

        @Option(names = "--chat", description = "render the prompt as a user message with the model's chat template")
        boolean chat;

        @Option(names = "--max-tokens", defaultValue = "32")
        int maxTokens;

        @Option(names = "--temperature", defaultValue = "0")
        float temperature;

        @Option(names = "--seed")
        Long seed;

        @Option(names = "--threads", defaultValue = "0")
        int threads;

        @Override
        public void run() {
            if (!Files.exists(model))
                throw new IllegalArgumentException("--model " + model
                        + " does not exist; generate one with: ./mooncakej model generate --preset tiny --out "
                        + model);
            LlamaEngine.Config cfg = LlamaEngine.Config.of(model);
            if (threads > 0) cfg = cfg.withThreads(threads);
            try (LlamaEngine engine = new LlamaEngine(cfg)) {
                String text = prompt;
                if (chat && engine.chatTemplate() != null) {
                    text = engine.chatTemplate().render(List.of(new ChatTemplate.Message("user", prompt)), true);
                }
                int[] ids = engine.tokenizer().encodeWithSpecials(text);
                long t0 = System.nanoTime();
                TextGenerator.Result r = TextGenerator.generate(
                        engine,
                        ids,
                        new SamplingParams(temperature, 1f, 0, seed, maxTokens, List.of(), false),
                        PrefillOptions.DEFAULT);
                double s = (System.nanoTime() - t0) / 1e9;
                System.out.println(r.text());
                System.err.printf(
                        "[%d prompt tokens, %d generated, %s, %.2f s]%n",
                        ids.length, r.tokens().size(), r.finishReason(), s);
            }
        }
    }
}
