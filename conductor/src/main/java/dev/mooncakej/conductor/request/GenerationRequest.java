package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.tools.ToolSet;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import java.util.List;

/**
 * A validated completion request, whatever endpoint it came from.
 *
 * @param chat          true for /v1/chat/completions (chunks and messages), false for /v1/completions
 * @param promptTokens  the rendered, tokenized prompt
 * @param salt          the tenant's block-key salt (its API key's), or null
 * @param tools         the chat request's function tools (how its answer is parsed for calls), or null
 * @param echo          completions' {@code echo}: the prompt's text, returned before the answer; or null
 */
public record GenerationRequest(
        boolean chat,
        String model,
        int[] promptTokens,
        int maxTokens,
        Sampling sampling,
        List<String> stop,
        boolean stream,
        boolean includeUsage,
        String requestId,
        String salt,
        ToolSet tools,
        String echo) {
    public GenerationRequest(
            boolean chat,
            String model,
            int[] promptTokens,
            int maxTokens,
            Sampling sampling,
            List<String> stop,
            boolean stream,
            boolean includeUsage,
            String requestId,
            String salt) {
        this(chat, model, promptTokens, maxTokens, sampling, stop, stream, includeUsage, requestId, salt, null, null);
    }
}
