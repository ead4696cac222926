package dev.mooncakej.simulator;

/**
 * One request of a Mooncake trace: arrival (seconds, after the speed factor), prompt and output
 * lengths, and the prompt's prefix-block ids ({@code hash_ids}: equal id, equal prefix).
 */
public record TraceRequest(int index, double arrival, int inputTokens, int outputTokens, long[] blocks) {}
