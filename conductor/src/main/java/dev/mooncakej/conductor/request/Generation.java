package dev.mooncakej.conductor.request;

import java.util.List;
import reactor.core.publisher.Flux;

/**
 * A request once its first token is known: where it was served (the stable ids of the prefill and
 * decode workers, such as {@code prefill-0}, returned to the client as {@code x-mooncakej-prefill} and
 * {@code x-mooncakej-decode}; never their addresses), the text events of each choice ({@code n} of
 * them, each starting with its first token; subscribe to all of them, the decode starts once every
 * one is subscribed), and the prompt's log-probabilities when they were asked for (else null).
 */
public record Generation(String prefill, String decode, List<Flux<GenerationEvent>> choices, float[] promptLogprobs) {
    /** The events of the first (with {@code n} = 1, the only) choice. */
    public Flux<GenerationEvent> events() {
        return choices.get(0);
    }
}
