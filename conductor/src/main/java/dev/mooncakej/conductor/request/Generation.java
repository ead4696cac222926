package dev.mooncakej.conductor.request;

import reactor.core.publisher.Flux;

/**
 * A request once its first token is known: where it was served (the stable ids of the prefill and
 * decode workers, such as {@code prefill-0}, returned to the client as {@code x-mooncakej-prefill} and
 * {@code x-mooncakej-decode}; never their addresses) and the text events, starting with that token.
 */
public record Generation(String prefill, String decode, Flux<GenerationEvent> events) {}
