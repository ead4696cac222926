/**
 * The prefill worker (Spring Boot): incremental chunked prefill over a local prefix-block pool, layer-wise KV
 * writes into the decode worker's claimed reservation.
 */
package dev.mooncakej.prefill;
