/**
 * Generated models: BPE and SentencePiece vocabularies trained on a small corpus, random weights, GGUF output
 * ({@code ./mooncakej model generate}).
 */
package dev.mooncakej.engine.generate;
