/**
 * Constrained decoding: a JSON schema compiled to a byte-level automaton ({@link
 * dev.mooncakej.engine.constrain.JsonSchemas}, {@link dev.mooncakej.engine.constrain.JsonMatcher}) and
 * the per-step token mask it gives over a vocabulary ({@link dev.mooncakej.engine.constrain.TokenConstraint}).
 */
package dev.mooncakej.engine.constrain;
