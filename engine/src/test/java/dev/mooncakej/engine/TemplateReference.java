package dev.mooncakej.engine;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Renders chat templates with @huggingface/jinja (tools/llama-ref/template.mjs, installed by
 * {@code ./mooncakej test}), the Jinja implementation Hugging Face's transformers.js uses, as the
 * reference the engine's rendering is compared with.
 */
public final class TemplateReference {
    /** One conversation to render. */
    public record Case(List<Map<String, Object>> messages, boolean addGenerationPrompt, Map<String, Object> extra) {
        public Case(List<Map<String, Object>> messages, boolean addGenerationPrompt) {
            this(messages, addGenerationPrompt, Map.of());
        }
    }

    /** The rendered text, or the error the template raised. */
    public record Rendered(String text, String error) {}

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private TemplateReference() {}

    public static List<Rendered> render(String template, String bos, String eos, Instant now, List<Case> cases)
            throws Exception {
        Map<String, Object> req = new LinkedHashMap<>();
        req.put("template", template);
        req.put("bos_token", bos);
        req.put("eos_token", eos);
        req.put("now", now.toString());
        List<Map<String, Object>> cs = new ArrayList<>();
        for (Case c : cases)
            cs.add(Map.of(
                    "messages", c.messages(), "add_generation_prompt", c.addGenerationPrompt(), "extra", c.extra()));
        req.put("cases", cs);
        Path dir = LlamaCppReference.referenceDir();
        Path out = Files.createTempFile("template-ref", ".json");
        Path err = Files.createTempFile("template-ref", ".err");
        try {
            ProcessBuilder pb = new ProcessBuilder("node", "template.mjs")
                    .directory(dir.toFile())
                    .redirectOutput(out.toFile())
                    .redirectError(err.toFile());
            pb.environment().put("TZ", "UTC");
            Process p = pb.start();
            p.getOutputStream().write(JSON.writeValueAsBytes(req));
            p.getOutputStream().close();
            if (!p.waitFor(2, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IllegalStateException("template reference timed out");
            }
            if (p.exitValue() != 0)
                throw new IllegalStateException("template reference failed (exit " + p.exitValue() + "): "
                        + Files.readString(err, StandardCharsets.UTF_8));
            List<Rendered> results = new ArrayList<>();
            for (JsonNode r : JSON.readTree(out.toFile()).get("results")) {
                results.add(new Rendered(
                        r.has("text") ? r.get("text").asString() : null,
                        r.has("error") ? r.get("error").asString() : null));
            }
            return results;
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }
}
