/**
 * Vector API kernels (F32/F16/BF16/Q8_0/Q4_0 matrix-vector and batched products) and the engine's thread pool.
 */
package dev.mooncakej.engine.tensor;
