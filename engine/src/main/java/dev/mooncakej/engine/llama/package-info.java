/**
 * The built-in Llama-family engine: configuration from GGUF metadata, weights, the forward pass for chunked
 * prefill and batched decode.
 */
package dev.mooncakej.engine.llama;
