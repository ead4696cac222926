/**
 * The served model as the conductor needs it: name, context, tokenizer, chat template and block keys, from the
 * GGUF metadata.
 */
package dev.mooncakej.conductor.model;
