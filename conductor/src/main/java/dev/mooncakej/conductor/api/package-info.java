/**
 * The OpenAI-compatible edge: request parsing and validation into a {@code GenerationRequest}, responses and SSE
 * chunks, OpenAI error bodies.
 */
package dev.mooncakej.conductor.api;
