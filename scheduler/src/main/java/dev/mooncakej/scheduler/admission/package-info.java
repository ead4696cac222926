/**
 * Admission: where a request can be refused, in the order it meets them. The scheduler's own checks
 * are the classes here (one per {@link dev.mooncakej.scheduler.AdmissionMode}, plus the TTFT check
 * every mode makes in {@code ClusterScheduler.decide}); the conductor's other admission points run
 * before or after them, each with its OpenAI error code and its {@code mooncakej_rejected_total}
 * reason where it has one:
 * <ol>
 *   <li><b>Body size</b> ({@code conductor/api/BodyLimitFilter}): a body over
 *       {@code mooncakej.conductor.max-body-bytes} gets 413 before it is read.
 *   <li><b>API keys and their limits</b> ({@code conductor/api/ApiKeys}): 401 {@code invalid_api_key};
 *       429 {@code rate_limit_exceeded} when a key is over its requests, tokens or concurrency limit.
 *   <li><b>Readiness</b> ({@code conductor/api/OpenAiController}, {@code conductor/request/RequestPath}):
 *       503 {@code standby} on a conductor that is not the leader; 503 {@code no_workers} while no
 *       prefill or decode worker is admitted (naming the workers still calibrating or warming up).
 *   <li><b>Tokenizer queue</b> ({@code conductor/api/FairTokenizerPool}): 503 {@code overloaded} when
 *       too many prompts wait to be tokenized (fair per key).
 *   <li><b>The scheduler</b> (here): 429 {@code overloaded}, reason {@code ttft_slo} (predicted TTFT
 *       over its SLO, every mode) or {@code decode_load} ({@link EarlyRejection},
 *       {@link PredictiveEarlyRejection}; {@link NoAdmission} checks decode only after the prefill).
 *   <li><b>KV reservation</b> ({@code RequestPath.reserve}): 429 {@code overloaded}, reason
 *       {@code kv_full}, when no decode worker can reserve the request's KV.
 * </ol>
 */
package dev.mooncakej.scheduler.admission;
