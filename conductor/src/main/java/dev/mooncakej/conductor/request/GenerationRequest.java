package dev.mooncakej.conductor.request;

import dev.mooncakej.conductor.tools.ToolSet;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import dev.mooncakej.web.Traced;
import java.util.List;

/**
 * A validated completion request, whatever endpoint it came from.
 *
 * @param chat          true for /v1/chat/completions (chunks and messages), false for /v1/completions
 * @param promptTokens  the rendered, tokenized prompt
 * @param salt          the tenant's block-key salt (its API key's), or null
 * @param tools         the chat request's function tools (how its answer is parsed for calls), or null
 * @param echo          completions' {@code echo}: the prompt's text, returned before the answer; or null
 * @param n             how many choices to generate from the one prefill (1..16)
 * @param promptLogprobs completions' {@code echo} with {@code logprobs}: the log-probability of each prompt
 *                      token after the first, computed by the prefill over the whole prompt
 * @param trace         the conductor's span of the request ({@link Traced#NONE}: not traced), whose
 *                      context goes with every call to a worker
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
        String echo,
        int n,
        boolean promptLogprobs,
        Traced trace) {
    /** The most choices one request may ask for. */
    public static final int MAX_N = 16;

    public GenerationRequest {
        trace = trace == null ? Traced.NONE : trace;
    }

    /** How log lines name this request: its id, and its trace id when traced ({@code id trace=<trace id>}). */
    public String logId() {
        return trace.logId(requestId);
    }

    /** This request, traced by {@code span}. */
    public GenerationRequest traced(Traced span) {
        return new GenerationRequest(
                chat,
                model,
                promptTokens,
                maxTokens,
                sampling,
                stop,
                stream,
                includeUsage,
                requestId,
                salt,
                tools,
                echo,
                n,
                promptLogprobs,
                span);
    }
}
