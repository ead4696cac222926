package dev.mooncakej.conductor.model;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.engine.gguf.GgufFile;
import dev.mooncakej.engine.llama.LlamaConfig;
import dev.mooncakej.engine.tokenizer.ChatTemplate;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import dev.mooncakej.kvcache.BlockKeys;
import jakarta.annotation.PreDestroy;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.LoggerFactory;
import org.springframework.stereotype.Component;

/**
 * The model as the conductor needs it: name, context length, tokenizer, chat template and block keys,
 * read from the GGUF metadata (weights are never touched here).
 */
@Component
public class ServedModel {
    private final GgufFile file;
    private final String name;
    private final int contextLength;
    private final long kvBytesPerToken;
    private final Tokenizer tokenizer;
    private final ChatTemplate chatTemplate;
    private final BlockKeys blockKeys;
    private final List<String> names;
    private final int maxTokenBytes;

    public ServedModel(ConductorProperties props) {
        this.file = GgufFile.open(Path.of(props.model()));
        LlamaConfig cfg = LlamaConfig.from(file);
        String fileName = file.has("general.name")
                ? file.getString("general.name")
                : Path.of(props.model()).getFileName().toString();
        this.name = props.modelName() != null && !props.modelName().isBlank() ? props.modelName() : fileName;
        this.contextLength = cfg.contextLength();
        this.kvBytesPerToken = 2L * cfg.layers() * cfg.kvHeads() * cfg.headDim() * Float.BYTES;
        this.tokenizer = Tokenizer.from(file);
        LinkedHashSet<String> all = new LinkedHashSet<>();
        all.add(name);
        all.addAll(props.modelAliases());
        this.names = List.copyOf(all);
        int longest = 1;
        for (int id = 0; id < tokenizer.vocabSize(); id++) longest = Math.max(longest, tokenizer.tokenBytes(id).length);
        this.maxTokenBytes = longest;
        String tpl = file.has("tokenizer.chat_template") ? file.getString("tokenizer.chat_template") : null;
        this.chatTemplate = tpl == null
                ? null
                : new ChatTemplate(
                        tpl,
                        tokenizer.bos() >= 0 ? tokenizer.tokenText(tokenizer.bos()) : "",
                        tokenizer.eos() >= 0 ? tokenizer.tokenText(tokenizer.eos()) : "");
        this.blockKeys = new BlockKeys(file.keyIdentity(), props.blockTokens());
        LoggerFactory.getLogger(ServedModel.class)
                .info("serving model {}, context {} tokens, from {}", name, contextLength, props.model());
    }

    public String name() {
        return name;
    }

    /** Every id clients may send as {@code model}: the name, then the configured aliases ({@code model-aliases}). */
    public List<String> names() {
        return names;
    }

    /** Whether a request's {@code model} names this model (its name or an alias). */
    public boolean serves(String model) {
        return names.contains(model);
    }

    /**
     * The most bytes one token stands for: a text of B bytes has at least B / this many tokens
     * (a cheap bound that refuses an over-context prompt before it is tokenized).
     */
    public int maxTokenBytes() {
        return maxTokenBytes;
    }

    /** Bytes of K and V of one token over all layers, as the workers' KV cache holds them (F32). */
    public long kvBytesPerToken() {
        return kvBytesPerToken;
    }

    /**
     * The context a prompt and its completion must fit: the smallest the admitted workers state in
     * their profiles (a simulated engine models its profile's context, not the tokenizer file's), else
     * the model file's.
     */
    public int contextLength() {
        int w = workersContext;
        return w > 0 ? w : contextLength;
    }

    /** The model file's own context length. */
    public int fileContextLength() {
        return contextLength;
    }

    private volatile int workersContext;

    /** The admitted workers' smallest stated context (0: none stated). */
    public void workersContext(int tokens) {
        this.workersContext = Math.max(0, tokens);
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public ChatTemplate chatTemplate() {
        return chatTemplate;
    }

    /** The model identity the block keys derive from (name and file size). */
    public String keyIdentity() {
        return file.keyIdentity();
    }

    public BlockKeys blockKeys() {
        return blockKeys;
    }

    private List<String> specialTexts;

    /** The text of every control and user-defined token (what a prompt must not smuggle in as text). */
    public synchronized List<String> specialTokenTexts() {
        if (specialTexts == null) {
            List<String> out = new ArrayList<>();
            for (int id = 0; id < tokenizer.vocabSize(); id++) {
                int type = tokenizer.tokenType(id);
                String text = tokenizer.tokenText(id);
                if ((type == 3 || type == 4) && text != null && text.length() > 1) out.add(text);
            }
            specialTexts = List.copyOf(out);
        }
        return specialTexts;
    }

    private final ConcurrentHashMap<String, BlockKeys> salted = new ConcurrentHashMap<>();

    /** The block keys of a tenant whose prefixes nobody else may share ({@code salt}; null: the shared keys). */
    public BlockKeys blockKeys(String salt) {
        return salt == null ? blockKeys : salted.computeIfAbsent(salt, blockKeys::salted);
    }

    @PreDestroy
    public void close() {
        file.close();
    }
}
