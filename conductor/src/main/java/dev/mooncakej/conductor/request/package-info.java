/**
 * The request path, one class per phase: {@link dev.mooncakej.conductor.request.Admission} (leader,
 * workers admitted, the scheduler's decision), {@link dev.mooncakej.conductor.request.Placement} (KV
 * reserved on a decode worker), {@link dev.mooncakej.conductor.request.PrefillCall} (the prefill
 * writes the KV and returns the first token), {@link dev.mooncakej.conductor.request.DecodeRelay}
 * (the decode stream relayed as text; the reservation released however the request ends) and
 * {@link dev.mooncakej.conductor.request.SchedulerFeedback} (what each request teaches the
 * estimators and routing health), composed by {@link dev.mooncakej.conductor.request.RequestPath};
 * {@link dev.mooncakej.conductor.request.WarmUp} sends the conductor's own start-up requests through
 * it. Failures are typed ({@link dev.mooncakej.conductor.request.RequestFailure}); only {@code api/}
 * maps them to HTTP statuses and OpenAI error bodies. A {@code GenerationRequest} carries its
 * structured-output constraint in its sampling settings (the workers enforce it) and its tools
 * ({@code conductor.tools}: {@code api/} parses the answer for calls); where the next feature lands:
 * stream migration replaces {@code DecodeRelay}'s source when a decode worker is lost.
 */
package dev.mooncakej.conductor.request;
