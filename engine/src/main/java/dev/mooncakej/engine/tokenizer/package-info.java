/**
 * Tokenizers (byte-level BPE with its pre-tokenizers, SentencePiece), vocabularies and Jinja chat templates.
 */
package dev.mooncakej.engine.tokenizer;
