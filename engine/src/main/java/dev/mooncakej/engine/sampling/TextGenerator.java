package dev.mooncakej.engine.sampling;

import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.InferenceEngine;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.List;

/**
 * Generates a completion for one prompt on one engine: prefill, then decode until an
 * end-of-generation token, a stop sequence or max tokens. The workers do the same steps with many
 * sequences in one continuous batch; this single-sequence form is what tests, the CLI and the
 * reference comparisons use.
 */
public final class TextGenerator {

    public enum FinishReason {
        STOP,
        LENGTH
    }

    public record Result(
            int[] promptTokens, List<Integer> tokens, String text, FinishReason finishReason, List<Float> logprobs) {}

    private TextGenerator() {}

    /** The output at the end: what was released plus what a stop-sequence prefix still held back. */
    private static String text(TextAssembler a) {
        return a.stopped() ? a.released() : a.released() + a.flush();
    }

    public static Result generate(InferenceEngine engine, int[] prompt, SamplingParams params, PrefillOptions prefill) {
        Tokenizer tok = engine.tokenizer();
        int vocab = engine.info().vocabSize();
        Sequence seq = engine.newSequence();
        try {
            float[] logits = new float[vocab];
            if (!engine.prefill(seq, prompt, prefill, logits)) throw new IllegalStateException("KV cache is full");
            Sampler sampler = new Sampler(params, vocab);
            TextAssembler stop = new TextAssembler(tok, params.stop());
            List<Integer> out = new ArrayList<>();
            List<Float> lps = params.logprobs() ? new ArrayList<>() : null;
            DecodeBatch batch = new DecodeBatch(1, vocab);
            float[] cur = logits;
            int curOff = 0;
            while (true) {
                int t = sampler.sample(cur, curOff, vocab);
                if (tok.isEndOfGeneration(t)) return new Result(prompt, out, text(stop), FinishReason.STOP, lps);
                out.add(t);
                if (lps != null) lps.add(Sampler.logprob(cur, curOff, vocab, t));
                stop.add(t);
                if (stop.stopped()) return new Result(prompt, out, stop.released(), FinishReason.STOP, lps);
                if (out.size() >= params.maxTokens())
                    return new Result(prompt, out, text(stop), FinishReason.LENGTH, lps);
                if (seq.length() >= engine.info().contextLength())
                    return new Result(prompt, out, text(stop), FinishReason.LENGTH, lps);
                batch.clear();
                batch.add(seq, t);
                engine.decode(batch);
                if (!batch.ok(0)) throw new IllegalStateException("KV cache is full");
                cur = batch.logits();
                curOff = batch.logitsOffset(0);
            }
        } finally {
            seq.release();
        }
    }
}
