package dev.mooncakej.conductor.request;

/** What a generation produces, in order: text deltas, then one {@link Done}. */
public sealed interface GenerationEvent {
    /** Text released to the client, with the token that completed it (its log-probability when asked). */
    record Delta(String text, int token, float logprob) implements GenerationEvent {}

    /** The end: why, and the usage. */
    record Done(String finishReason, int promptTokens, int completionTokens, int cachedTokens)
            implements GenerationEvent {}
}
