package dev.mooncakej.worker;

import dev.mooncakej.engine.constrain.TokenConstraint;
import dev.mooncakej.engine.sampling.LogitAdjust;
import dev.mooncakej.engine.sampling.Sampler;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import dev.mooncakej.kvcache.wire.WorkerMessages.Sampling;
import java.util.List;

/**
 * The first token of an answer from its prompt's last logits, as the prefill worker draws it, and as
 * a decode worker that takes a moved stream itself draws the new placement's first: under the
 * request's logit bias, its end-of-generation rule, its schema (a constraint that has replayed the
 * tokens drawn before) and its seeded generator where it stands ({@link Sampling#generatorAt}).
 */
public final class FirstToken {
    private FirstToken() {}

    /** The token drawn and its log-probability (0 unless asked for). */
    public record Drawn(int token, float logprob) {}

    /**
     * Draws from {@code logits} (adjusted in place); {@code maxTokens}, when known, lets a schema's
     * constraint steer towards closing in time.
     */
    public static Drawn draw(
            Sampling s, float[] logits, Tokenizer tokenizer, TokenConstraint constraint, Integer maxTokens) {
        long[] at = s.generatorAt(0, 0);
        Sampler sampler = new Sampler(
                new SamplingParams(
                        s.temperature(), s.topP(), s.topK(), at == null ? null : at[0], 1, List.of(), s.logprobs()),
                logits.length);
        if (at != null) sampler.skip(at[1]);
        LogitAdjust.bias(logits, 0, s.logitBias());
        if (s.endForbidden(0) && (constraint == null || constraint.canContinue()))
            LogitAdjust.forbidEnd(logits, 0, tokenizer);
        if (constraint != null) constraint.mask(logits, 0, logits.length);
        int first = sampler.sample(logits, 0, logits.length);
        if (constraint != null && maxTokens != null) // as the decode worker: the last token is the end
        first = constraint.steer(first, maxTokens - 2);
        return new Drawn(first, s.logprobs() ? Sampler.logprob(logits, 0, logits.length, first) : 0f);
    }
}
