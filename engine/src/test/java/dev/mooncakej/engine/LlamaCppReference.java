package dev.mooncakej.engine;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Runs llama.cpp (node-llama-cpp 3.21.1, installed by {@code ./mooncakej test} into tools/llama-ref) in
 * a child process on a GGUF file and returns its tokens, per-position next-token log-probabilities
 * over the whole vocabulary, and greedy continuations. A child process, because some malformed
 * files abort llama.cpp's whole process.
 */
public final class LlamaCppReference {
    /** @param specialTokens the prompt tokenized with special-token text parsed, when asked for */
    public record Result(int[] tokens, float[][] logprobs, int[] greedy, int[] specialTokens) {}

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private LlamaCppReference() {}

    public static Path projectRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("mooncakej"))) p = p.getParent();
        if (p == null)
            throw new IllegalStateException("cannot find the project root (the folder holding ./mooncakej) above "
                    + Path.of("").toAbsolutePath());
        return p;
    }

    public static Path referenceDir() {
        Path dir = projectRoot().resolve("tools/llama-ref");
        if (!Files.isDirectory(dir.resolve("node_modules/node-llama-cpp"))) {
            throw new IllegalStateException("llama.cpp reference is not installed in " + dir
                    + "; run the tests with ./mooncakej test, which installs it (npm ci in tools/llama-ref)");
        }
        return dir;
    }

    public static List<Result> run(Path model, List<String> prompts, int continuation, boolean probabilities)
            throws IOException, InterruptedException {
        return run(model, prompts, continuation, probabilities, false);
    }

    public static List<Result> run(
            Path model, List<String> prompts, int continuation, boolean probabilities, boolean specialTokens)
            throws IOException, InterruptedException {
        Map<String, Object> req = new LinkedHashMap<>();
        req.put("specialTokens", specialTokens);
        req.put("model", model.toAbsolutePath().toString());
        req.put("prompts", prompts);
        req.put("continuation", continuation);
        req.put("probabilities", probabilities);
        req.put("threads", 1);
        Path dir = referenceDir();
        Path out = Files.createTempFile("llama-ref", ".json");
        Path err = Files.createTempFile("llama-ref", ".err");
        try {
            Process p = new ProcessBuilder("node", "reference.mjs")
                    .directory(dir.toFile())
                    .redirectOutput(out.toFile())
                    .redirectError(err.toFile())
                    .start();
            p.getOutputStream().write(JSON.writeValueAsBytes(req));
            p.getOutputStream().close();
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IllegalStateException("llama.cpp reference timed out");
            }
            if (p.exitValue() != 0) {
                throw new IllegalStateException("llama.cpp reference failed (exit " + p.exitValue() + "): "
                        + Files.readString(err, StandardCharsets.UTF_8));
            }
            JsonNode root = JSON.readTree(out.toFile());
            List<Result> results = new ArrayList<>();
            for (JsonNode r : root.get("results")) {
                int[] tokens = ints(r.get("tokens"));
                float[][] lp = null;
                if (r.has("logprobs")) {
                    lp = new float[r.get("logprobs").size()][];
                    for (int i = 0; i < lp.length; i++) {
                        JsonNode row = r.get("logprobs").get(i);
                        lp[i] = new float[row.size()];
                        for (int j = 0; j < lp[i].length; j++)
                            lp[i][j] = (float) row.get(j).asDouble();
                    }
                }
                results.add(new Result(
                        tokens,
                        lp,
                        r.has("greedy") ? ints(r.get("greedy")) : null,
                        r.has("specialTokens") ? ints(r.get("specialTokens")) : null));
            }
            return results;
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    private static int[] ints(JsonNode a) {
        int[] v = new int[a.size()];
        for (int i = 0; i < v.length; i++) v[i] = a.get(i).asInt();
        return v;
    }
}
