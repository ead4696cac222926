package dev.mooncakej.engine.generate;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A real model's vocabulary, read from its Hugging Face {@code tokenizer.json} (and the
 * {@code tokenizer_config.json} beside it, for the chat template and the BOS/EOS tokens), turned into
 * the {@code tokenizer.ggml.*} metadata llama.cpp's converter writes:
 *
 * <ul>
 *   <li>byte-level BPE (Llama 3, Qwen2/2.5/3): {@code gpt2} with the merges, and the pre-tokenizer
 *       named by its split regex ({@code llama-bpe}: digits in runs of up to three; {@code qwen2}: one
 *       digit at a time);</li>
 *   <li>BPE with byte fallback and a prepended {@code ▁} (Llama 2, Mistral, TinyLlama): {@code llama}
 *       (SentencePiece), each token scored minus the rank of the merge that makes it, so merges happen
 *       in the tokenizer's own order.</li>
 * </ul>
 * Added tokens marked special are control tokens, other added tokens user-defined. Any other kind of
 * tokenizer is refused naming what it is.
 */
public final class HfVocabulary {
    /** End-of-turn tokens chat models stop on, by their text (llama.cpp recognises the same). */
    private static final List<String> END_OF_TURN = List.of("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>");

    private static final String LLAMA3_SPLIT =
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                    + "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    private static final String QWEN2_SPLIT =
            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                    + "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    final String model; // gpt2 or llama
    final String pre; // pre-tokenizer name (gpt2 only)
    final String[] tokens;
    final int[] types;
    final float[] scores; // llama only
    final String[] merges; // gpt2 only
    final int bos, eos, eot, unknown;
    final boolean addBos;
    final String chatTemplate; // or null
    final String source;

    private HfVocabulary(
            String model,
            String pre,
            String[] tokens,
            int[] types,
            float[] scores,
            String[] merges,
            int bos,
            int eos,
            int eot,
            int unknown,
            boolean addBos,
            String chatTemplate,
            String source) {
        this.model = model;
        this.pre = pre;
        this.tokens = tokens;
        this.types = types;
        this.scores = scores;
        this.merges = merges;
        this.bos = bos;
        this.eos = eos;
        this.eot = eot;
        this.unknown = unknown;
        this.addBos = addBos;
        this.chatTemplate = chatTemplate;
        this.source = source;
    }

    public int size() {
        return tokens.length;
    }

    /** {@code gpt2} (byte-level BPE) or {@code llama} (SentencePiece). */
    public String model() {
        return model;
    }

    public String chatTemplate() {
        return chatTemplate;
    }

    /**
     * Reads {@code file}: a tokenizer.json, or a folder holding one; tokenizer_config.json is read from
     * the same folder when it is there.
     */
    public static HfVocabulary read(Path file) {
        Path json = Files.isDirectory(file) ? file.resolve("tokenizer.json") : file;
        if (!Files.isRegularFile(json)) {
            throw new IllegalArgumentException("--vocab " + file
                    + ": no tokenizer.json there; expected a Hugging Face tokenizer.json or its folder");
        }
        JsonMapper mapper = JsonMapper.builder().build();
        JsonNode t, cfg = null;
        try {
            t = mapper.readTree(json.toFile());
            Path c = json.resolveSibling("tokenizer_config.json");
            if (Files.isRegularFile(c)) cfg = mapper.readTree(c.toFile());
        } catch (JacksonException e) {
            throw new IllegalArgumentException(json + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        return from(t, cfg, json.toString());
    }

    static HfVocabulary from(JsonNode t, JsonNode cfg, String source) {
        JsonNode m = t.path("model");
        String type = m.path("type").asString("");
        if (!type.equals("BPE")) {
            throw new IllegalArgumentException(source + ": model.type '" + type
                    + "' is not supported; expected BPE (byte-level as in Llama 3 and Qwen, "
                    + "or with byte fallback as in Llama 2 and Mistral)");
        }
        Map<Integer, String> byId = new HashMap<>();
        for (Map.Entry<String, JsonNode> e : m.path("vocab").properties())
            byId.put(e.getValue().asInt(), e.getKey());
        Map<Integer, Boolean> added = new HashMap<>(); // id -> special
        for (JsonNode a : t.path("added_tokens")) {
            byId.put(a.path("id").asInt(), a.path("content").asString());
            added.put(a.path("id").asInt(), a.path("special").asBoolean(false));
        }
        int n = byId.keySet().stream().mapToInt(Integer::intValue).max().orElse(-1) + 1;
        if (n == 0) throw new IllegalArgumentException(source + ": model.vocab is empty; expected the token table");
        String[] tokens = new String[n];
        int[] types = new int[n];
        for (int i = 0; i < n; i++) {
            String s = byId.get(i);
            if (s == null) {
                tokens[i] = "[PAD" + i + "]"; // a hole in the ids, as llama.cpp's converter fills it
                types[i] = 5; // unused
            } else {
                tokens[i] = s;
                Boolean special = added.get(i);
                types[i] = special == null ? 1 : special ? 3 : 4;
            }
        }
        List<String> merges = new ArrayList<>();
        for (JsonNode mg : m.path("merges")) {
            if (mg.isArray()) merges.add(mg.get(0).asString() + " " + mg.get(1).asString());
            else merges.add(mg.asString());
        }
        boolean byteFallback = m.path("byte_fallback").asBoolean(false);
        Map<String, Integer> ids = new HashMap<>();
        for (int i = 0; i < n; i++) ids.putIfAbsent(tokens[i], i);
        String template = cfg == null ? null : text(cfg.get("chat_template"));
        int bos = cfg == null ? -1 : id(ids, text(cfg.get("bos_token")));
        int eos = cfg == null ? -1 : id(ids, text(cfg.get("eos_token")));
        int eot = -1;
        for (String s : END_OF_TURN) if (eot < 0) eot = id(ids, s);

        if (byteFallback) {
            String normalizer = String.valueOf(t.get("normalizer"));
            if (!normalizer.contains("\u2581")) {
                throw new IllegalArgumentException(
                        source + ": a byte-fallback BPE without the SentencePiece normalizer "
                                + "(spaces as U+2581) is not supported");
            }
            float[] scores = new float[n];
            for (int r = 0; r < merges.size(); r++) {
                String mg = merges.get(r);
                Integer id = ids.get(mg.replace(" ", ""));
                if (id != null && scores[id] == 0) scores[id] = -(r + 1);
            }
            for (int i = 0; i < n; i++) {
                if (tokens[i].matches("<0x[0-9A-F]{2}>")) types[i] = 6;
                else if (tokens[i].equals("<unk>")) types[i] = 2;
            }
            int unk = id(ids, text(m.get("unk_token")));
            boolean addBos = cfg == null || cfg.path("add_bos_token").asBoolean(true);
            return new HfVocabulary(
                    "llama", null, tokens, types, scores, null, bos, eos, eot, unk, addBos, template, source);
        }
        String pre = preTokenizer(t.get("pre_tokenizer"), source);
        boolean addBos = cfg != null && cfg.path("add_bos_token").asBoolean(pre.equals("llama-bpe"));
        return new HfVocabulary(
                "gpt2",
                pre,
                tokens,
                types,
                null,
                merges.toArray(new String[0]),
                bos,
                eos,
                eot,
                -1,
                addBos,
                template,
                source);
    }

    /**
     * The llama.cpp pre-tokenizer name for a tokenizer.json's pre-tokenizer: the Llama 3 split regex
     * ({@code llama-bpe}), Qwen2's ({@code qwen2}), GPT-2's byte-level regex alone ({@code gpt-2}), or
     * single digits split off before it ({@code smollm}, as SmolLM's tokenizer.json has it).
     */
    private static String preTokenizer(JsonNode pre, String source) {
        String regex = null;
        boolean digits = false, byteLevelRegex = false;
        List<JsonNode> parts = new ArrayList<>();
        if (pre != null && pre.has("pretokenizers")) pre.path("pretokenizers").forEach(parts::add);
        else if (pre != null) parts.add(pre);
        for (JsonNode p : parts) {
            switch (p.path("type").asString("")) {
                case "Split" -> regex = p.path("pattern").path("Regex").asString(null);
                case "Digits" -> digits = p.path("individual_digits").asBoolean(false);
                case "ByteLevel" -> byteLevelRegex = p.path("use_regex").asBoolean(true);
                default -> {}
            }
        }
        if (regex == null && byteLevelRegex) return digits ? "smollm" : "gpt-2";
        if (LLAMA3_SPLIT.equals(regex)) return "llama-bpe";
        if (QWEN2_SPLIT.equals(regex)) return "qwen2";
        throw new IllegalArgumentException(source + ": pre-tokenizer " + pre
                + " is not supported; expected the Llama 3 (llama-bpe) or Qwen2 split regex, GPT-2's byte-level "
                + "regex, or single digits before it (smollm)");
    }

    private static String text(JsonNode n) {
        if (n == null || n.isNull()) return null;
        if (n.isObject()) return n.path("content").asString(null);
        return n.asString(null);
    }

    private static int id(Map<String, Integer> ids, String token) {
        if (token == null) return -1;
        Integer id = ids.get(token);
        return id == null ? -1 : id;
    }
}
