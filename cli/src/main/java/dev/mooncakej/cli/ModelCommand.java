package dev.mooncakej.cli;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.llama.LlamaEngine;
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
                description = "tiny (2 layers, width 64, F32) or small (8 layers, width 512, Q8_0)")
        String preset;

        @Option(names = "--out", required = true, description = "output .gguf file")
        Path out;

        @Option(names = "--arch", description = "llama or qwen2 (default: llama)")
        String arch;

        @Option(names = "--type", description = "weight type: F32, F16, BF16, Q8_0, Q4_0 (default: the preset's)")
        String type;

        @Option(names = "--seed", description = "random seed (default 42)")
        Long seed;

        @Option(names = "--tokenizer", description = "gpt2 (byte-level BPE, default) or llama (SentencePiece)")
        String tokenizer;

        @Override
        public void run() {
            ModelGenerator.Preset p = switch (preset.toLowerCase(Locale.ROOT)) {
                case "tiny" -> ModelGenerator.Preset.TINY;
                case "small" -> ModelGenerator.Preset.SMALL;
                default ->
                    throw new IllegalArgumentException(
                            "--preset '" + preset + "' is not known; expected tiny or small");
            };
            ModelGenerator.Spec s = ModelGenerator.preset(p);
            if (arch != null) {
                if (!arch.equals("llama") && !arch.equals("qwen2"))
                    throw new IllegalArgumentException("--arch '" + arch + "' is not known; expected llama or qwen2");
                s = s.withArchitecture(arch);
            }
            if (type != null) {
                GgmlType t;
                try {
                    t = GgmlType.valueOf(type.toUpperCase(Locale.ROOT));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException(
                            "--type '" + type + "' is not known; expected F32, F16, BF16, Q8_0 or Q4_0");
                }
                s = s.withWeightType(t);
            }
            if (seed != null) s = s.withSeed(seed);
            if (tokenizer != null) {
                if (!tokenizer.equals("gpt2") && !tokenizer.equals("llama"))
                    throw new IllegalArgumentException(
                            "--tokenizer '" + tokenizer + "' is not known; expected gpt2 or llama");
                s = s.withTokenizer(tokenizer);
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

    @Command(name = "info", description = "Print a GGUF file's metadata and tensors.")
    static final class Info implements Runnable {
        @Parameters(description = "model file")
        Path file;

        @Override
        public void run() {
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
