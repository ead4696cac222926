/**
 * GGUF v3 files: a bounds-checked, memory-mapped reader and a writer.
 */
package dev.mooncakej.engine.gguf;
