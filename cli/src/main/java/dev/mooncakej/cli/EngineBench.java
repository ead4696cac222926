package dev.mooncakej.cli;

import dev.mooncakej.engine.constrain.JsonSchemas;
import dev.mooncakej.engine.constrain.TokenConstraint;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Prefill and decode tokens/s of the built-in engine at 1 and 2 threads, beside llama.cpp
 * (node-llama-cpp, tools/llama-ref/bench.mjs) on the same file in the same run, and the process's
 * peak resident memory. Prefill: one prompt of {@code --prompt-tokens} (512 by default) in one chunk;
 * decode: batch 1, {@code --decode-tokens} steps; the median of {@code --repeats} (at least 3) runs
 * after a warm-up, each run's figure reported too, so one noisy run does not decide.
 */
@Command(name = "engine", description = "Prefill and decode tokens/s beside llama.cpp on the same file.")
final class EngineBench implements Runnable {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @Option(
            names = "--model",
            required = true,
            description = "GGUF file (e.g. ./mooncakej model generate --preset small --out small.gguf)")
    Path model;

    @Option(names = "--threads", split = ",", defaultValue = "1,2")
    int[] threads;

    @Option(names = "--prompt-tokens", defaultValue = "512")
    int promptTokens;

    @Option(names = "--decode-tokens", defaultValue = "64")
    int decodeTokens;

    @Option(
            names = "--repeats",
            defaultValue = "3",
            description = "runs per figure, at least 3; the median is reported")
    int repeats;

    @Option(names = "--no-reference", description = "skip llama.cpp")
    boolean noReference;

    @Option(names = "--json", description = "print one JSON object")
    boolean json;

    @Option(
            names = "--schema",
            description = "a JSON schema file: also decode under it (response_format json_schema, strict) and"
                    + " report the step time against unconstrained decoding in the same run")
    Path schema;

    @Override
    public void run() {
        if (!Files.exists(model)) {
            throw new IllegalArgumentException("--model " + model
                    + " does not exist; generate one: ./mooncakej model generate --preset small --out " + model);
        }
        if (repeats < 3) {
            throw new IllegalArgumentException(
                    "--repeats " + repeats + ": expected at least 3 (the median of the runs is reported)");
        }
        if (promptTokens < 1) throw new IllegalArgumentException("--prompt-tokens " + promptTokens + ": expected >= 1");
        String schemaText = null;
        if (schema != null) {
            try {
                schemaText = Files.readString(schema);
            } catch (IOException e) {
                throw new IllegalArgumentException("--schema " + schema + ": cannot read it: " + e.getMessage(), e);
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put(
                "command",
                "./mooncakej bench engine --model " + model + " --prompt-tokens " + promptTokens + " --decode-tokens "
                        + decodeTokens + " --repeats " + repeats + (schema == null ? "" : " --schema " + schema));
        out.put("machine", Machine.describe());
        out.put("model", model.toString());
        out.put("model_bytes", model.toFile().length());
        List<Map<String, Object>> rows = new ArrayList<>();
        long kvPoolBytes = 0;
        for (int t : threads) {
            progress("mooncakej engine, %d thread(s)...", t);
            LlamaEngine.Config cfg = LlamaEngine.Config.of(model).withThreads(t).withMaxRows(Math.max(promptTokens, 1));
            try (LlamaEngine engine = new LlamaEngine(cfg)) {
                kvPoolBytes = engine.kvCache().slab().byteSize();
                int vocab = engine.info().vocabSize();
                int[] prompt = new int[promptTokens];
                for (int i = 0; i < promptTokens; i++) prompt[i] = 1 + (i * 7919) % Math.max(2, vocab - 16);
                float[] logits = new float[vocab];
                DecodeBatch batch = new DecodeBatch(1, vocab);
                List<Double> prefills = new ArrayList<>(), decodes = new ArrayList<>();
                List<Double> constrained = new ArrayList<>(), constrainedCold = new ArrayList<>();
                for (int r = 0; r < repeats + 1; r++) { // first round warms the JIT
                    Sequence s = engine.newSequence();
                    long t0 = System.nanoTime();
                    engine.prefill(s, prompt, PrefillOptions.chunked(promptTokens), logits);
                    double prefill = promptTokens / ((System.nanoTime() - t0) / 1e9);
                    int tok = Sampler.argmax(logits, 0, vocab);
                    t0 = System.nanoTime();
                    for (int i = 0; i < decodeTokens; i++) {
                        batch.clear();
                        batch.add(s, tok);
                        engine.decode(batch);
                        tok = Sampler.argmax(batch.logits(), 0, vocab);
                    }
                    double decode = decodeTokens / ((System.nanoTime() - t0) / 1e9);
                    s.release();
                    if (r > 0) {
                        prefills.add(round(prefill));
                        decodes.add(round(decode));
                    }
                    if (schemaText != null) {
                        // cold: a grammar of its own, its state masks computed as the run meets them;
                        // warm: the grammar requests with this schema share, as the decode worker has it
                        double cold = constrainedDecode(engine, prompt, logits, batch, schemaText, false);
                        double warm = constrainedDecode(engine, prompt, logits, batch, schemaText, true);
                        if (r > 0) {
                            constrainedCold.add(round(cold));
                            constrained.add(round(warm));
                        }
                    }
                }
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("threads", t);
                row.put("prefill_tok_s", median(prefills));
                row.put("decode_tok_s", median(decodes));
                row.put("prefill_runs", prefills);
                row.put("decode_runs", decodes);
                if (schemaText != null) {
                    row.put("constrained_decode_tok_s", median(constrained));
                    row.put("constrained_decode_cold_tok_s", median(constrainedCold));
                    row.put("constrained_step_ratio", round2(median(decodes) / median(constrained)));
                    row.put("constrained_cold_step_ratio", round2(median(decodes) / median(constrainedCold)));
                    row.put("constrained_runs", constrained);
                    row.put("constrained_cold_runs", constrainedCold);
                }
                rows.add(row);
            }
        }
        out.put("mooncakej", rows);
        long rss = Machine.peakRssBytes();
        out.put("peak_rss_bytes", rss);
        out.put("kv_pool_bytes", kvPoolBytes);
        out.put("rss_budget_bytes", model.toFile().length() + kvPoolBytes + 300L * 1024 * 1024);
        if (!noReference) {
            progress("llama.cpp (node-llama-cpp 3.21.1), same file, same threads...");
            List<Map<String, Object>> ref = llamaCpp();
            out.put("llama_cpp", ref);
            List<Map<String, Object>> ratios = new ArrayList<>();
            for (int i = 0; i < rows.size(); i++) {
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("threads", rows.get(i).get("threads"));
                r.put(
                        "prefill_ratio",
                        round2((double) rows.get(i).get("prefill_tok_s")
                                / (double) ref.get(i).get("prefill_tok_s")));
                r.put(
                        "decode_ratio",
                        round2((double) rows.get(i).get("decode_tok_s")
                                / (double) ref.get(i).get("decode_tok_s")));
                ratios.add(r);
            }
            out.put("ratio_to_llama_cpp", ratios);
        }
        if (json) {
            System.out.println(JSON.writeValueAsString(out));
        } else {
            System.out.println(out.get("command"));
            System.out.println("machine: " + out.get("machine"));
            System.out.printf(
                    "%-8s %-22s %-22s %-22s%n",
                    "threads", "prefill tok/s (ratio)", "decode tok/s (ratio)", "llama.cpp prefill/decode");
            for (int i = 0; i < rows.size(); i++) {
                Map<String, Object> r = rows.get(i);
                String ref = "-", pr = "", dr = "";
                if (out.containsKey("llama_cpp")) {
                    @SuppressWarnings("unchecked")
                    Map<String, Object> l = ((List<Map<String, Object>>) out.get("llama_cpp")).get(i);
                    @SuppressWarnings("unchecked")
                    Map<String, Object> q = ((List<Map<String, Object>>) out.get("ratio_to_llama_cpp")).get(i);
                    ref = l.get("prefill_tok_s") + " / " + l.get("decode_tok_s");
                    pr = " (" + q.get("prefill_ratio") + "x)";
                    dr = " (" + q.get("decode_ratio") + "x)";
                }
                System.out.printf(
                        "%-8s %-22s %-22s %-22s%n",
                        r.get("threads"), r.get("prefill_tok_s") + pr, r.get("decode_tok_s") + dr, ref);
            }
            if (schemaText != null)
                for (Map<String, Object> r : rows)
                    System.out.printf(
                            "%s thread(s) under --schema: %s tok/s (step %sx unconstrained; cold grammar %s tok/s,"
                                    + " %sx)%n",
                            r.get("threads"),
                            r.get("constrained_decode_tok_s"),
                            r.get("constrained_step_ratio"),
                            r.get("constrained_decode_cold_tok_s"),
                            r.get("constrained_cold_step_ratio"));
            System.out.printf(
                    "peak RSS %.1f MB (budget: model %.1f MB + KV pool %.1f MB + 300 MB = %.1f MB)%n",
                    rss / 1e6,
                    model.toFile().length() / 1e6,
                    kvPoolBytes / 1e6,
                    ((long) out.get("rss_budget_bytes")) / 1e6);
        }
    }

    /**
     * Decode tokens/s under the schema, greedy among the allowed tokens and steered to close within the
     * run: each step masks the logits, picks, steers and advances the constraint; a value that ends
     * starts the next one (the engine goes on with the same sequence).
     */
    private double constrainedDecode(
            LlamaEngine engine, int[] prompt, float[] logits, DecodeBatch batch, String schemaText, boolean shared) {
        Tokenizer tokenizer = engine.tokenizer();
        int vocab = engine.info().vocabSize();
        Sequence s = engine.newSequence();
        engine.prefill(s, prompt, PrefillOptions.chunked(promptTokens), logits);
        TokenConstraint c = constraint(tokenizer, schemaText, shared);
        c.mask(logits, 0, vocab);
        int tok = c.steer(Sampler.argmax(logits, 0, vocab), decodeTokens);
        c.accept(tok);
        long t0 = System.nanoTime();
        for (int i = 0; i < decodeTokens; i++) {
            batch.clear();
            batch.add(s, tok);
            engine.decode(batch);
            if (tokenizer.isEndOfGeneration(tok) || !c.canContinue()) c = c.restart();
            c.mask(batch.logits(), 0, vocab);
            tok = c.steer(Sampler.argmax(batch.logits(), 0, vocab), decodeTokens - i - 1);
            c.accept(tok);
        }
        double tokS = decodeTokens / ((System.nanoTime() - t0) / 1e9);
        s.release();
        return tokS;
    }

    private static TokenConstraint constraint(Tokenizer tokenizer, String schemaText, boolean shared) {
        if (shared) return TokenConstraint.of(tokenizer, schemaText, true);
        try {
            return TokenConstraint.of(tokenizer, JsonSchemas.compile(JSON.readTree(schemaText), true));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("--schema: " + e.getMessage(), e);
        }
    }

    private List<Map<String, Object>> llamaCpp() {
        Path dir = Machine.projectRoot().resolve("tools/llama-ref");
        try {
            Map<String, Object> req = new LinkedHashMap<>();
            req.put("model", model.toAbsolutePath().toString());
            req.put("threads", threads);
            req.put("promptTokens", promptTokens);
            req.put("decodeTokens", decodeTokens);
            req.put("repeats", repeats);
            Process p = new ProcessBuilder("node", "bench.mjs")
                    .directory(dir.toFile())
                    .redirectError(ProcessBuilder.Redirect.INHERIT)
                    .start();
            p.getOutputStream().write(JSON.writeValueAsBytes(req));
            p.getOutputStream().close();
            byte[] stdout = p.getInputStream().readAllBytes();
            if (!p.waitFor(10, TimeUnit.MINUTES) || p.exitValue() != 0) {
                throw new IllegalStateException("llama.cpp benchmark failed (exit " + p.exitValue()
                        + "); is tools/llama-ref installed? ./mooncakej bench installs it");
            }
            List<Map<String, Object>> rows = new ArrayList<>();
            for (JsonNode r : JSON.readTree(stdout).get("results")) {
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("threads", r.get("threads").asInt());
                row.put("prefill_tok_s", round(r.get("prefill_tok_s").asDouble()));
                row.put("decode_tok_s", round(r.get("decode_tok_s").asDouble()));
                row.put("prefill_runs", r.get("prefill_runs"));
                row.put("decode_runs", r.get("decode_runs"));
                rows.add(row);
            }
            return rows;
        } catch (IOException e) {
            throw new IllegalStateException("cannot run the llama.cpp benchmark in " + dir + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    private void progress(String fmt, Object... args) {
        System.err.printf(fmt + "%n", args);
    }

    /** The median of the runs (the mean of the middle two for an even count). */
    static double median(List<Double> runs) {
        List<Double> sorted = runs.stream().sorted().toList();
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : round((sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2);
    }

    private static double round2(double v) {
        return Math.round(v * 100) / 100.0;
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
