package dev.mooncakej.engine.llama;

import dev.mooncakej.engine.gguf.GgmlType;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.gguf.GgufTensor;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Whether a model file will load, and why not, before anything is served: every step the engine
 * takes at start-up that can refuse a file (the GGUF structure and its tensor types, the architecture
 * and its hyper-parameters, every weight's shape, the tokenizer, the chat template) is run without
 * allocating the KV cache, and each refusal is kept with its message. What the file holds is reported
 * as far as it could be read.
 */
public final class ModelCheck {
    /**
     * @param problems        why it will not load (empty: it loads)
     * @param tensorTypes     tensors by type (empty when the file's structure could not be read)
     * @param tokenizer       {@code tokenizer.ggml.model} (gpt2, llama, ...), or null
     * @param preTokenizer    {@code tokenizer.ggml.pre}, or null
     * @param kvBytesPerToken the KV cache one token takes (keys and values of every layer, F32)
     */
    public record Report(
            Path file,
            List<String> problems,
            String architecture,
            int layers,
            int embedding,
            int contextLength,
            Map<GgmlType, Integer> tensorTypes,
            String tokenizer,
            String preTokenizer,
            boolean chatTemplate,
            long kvBytesPerToken) {
        public boolean loads() {
            return problems.isEmpty();
        }
    }

    private ModelCheck() {}

    public static Report check(Path file) {
        List<String> problems = new ArrayList<>();
        GgufFile f;
        try {
            f = GgufFile.open(file);
        } catch (RuntimeException e) {
            problems.add(e.getMessage());
            return new Report(file, problems, null, 0, 0, 0, Map.of(), null, null, false, 0);
        }
        try (f) {
            Map<GgmlType, Integer> types = new EnumMap<>(GgmlType.class);
            for (GgufTensor t : f.tensors().values()) types.merge(t.type(), 1, Integer::sum);
            String arch = text(f, "general.architecture");
            LlamaConfig c = null;
            try {
                c = LlamaConfig.from(f);
                new LlamaWeights(f, c); // every tensor's presence and shape
            } catch (RuntimeException e) {
                problems.add(e.getMessage());
            }
            try {
                Tokenizer.from(f);
            } catch (RuntimeException e) {
                problems.add(e.getMessage());
            }
            boolean template = f.has("tokenizer.chat_template");
            if (template) {
                try {
                    new ChatTemplate(f.getString("tokenizer.chat_template"), "", "");
                } catch (RuntimeException e) {
                    problems.add(file + ": tokenizer.chat_template: " + e.getMessage());
                }
            }
            return new Report(
                    file,
                    problems,
                    arch,
                    c == null ? 0 : c.layers(),
                    c == null ? 0 : c.embedding(),
                    c == null ? 0 : c.contextLength(),
                    types,
                    text(f, "tokenizer.ggml.model"),
                    text(f, "tokenizer.ggml.pre"),
                    template,
                    c == null ? 0 : 2L * c.layers() * c.kvHeads() * c.headDim() * Float.BYTES);
        }
    }

    private static String text(GgufFile f, String key) {
        try {
            return f.has(key) ? f.getString(key) : null;
        } catch (RuntimeException e) {
            return null;
        }
    }
}
