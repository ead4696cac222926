/**
 * The inference engine SPI the workers use: model info, sequences over the paged cache, prefill options and
 * decode batches.
 */
package dev.mooncakej.engine.spi;
