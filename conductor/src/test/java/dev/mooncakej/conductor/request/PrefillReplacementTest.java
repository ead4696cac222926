package dev.mooncakej.conductor.request;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.conductor.workers.WorkerClient;
import io.github.resilience4j.circuitbreaker.CallNotPermittedException;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import java.io.IOException;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

/**
 * Which failed prefills are placed again (issue 28), and which take their worker out of scheduling:
 * only a worker that answered nothing is sidelined; one that answered (it drains, its task passed its
 * deadline, its KV writes failed on the decode side) is well, and sidelining it (the only prefill
 * worker of a small cluster) would turn one failure into an outage.
 */
class PrefillReplacementTest {
    private static WorkerClient.WorkerException answered(int status, String code) {
        return new WorkerClient.WorkerException("http://127.0.0.1:1", status, code, "what the worker said");
    }

    @Test
    void aWorkerThatAnsweredNothingIsSidelinedAndTheRequestPlacedAgain() {
        assertThat(PrefillCall.replacement(new TimeoutException()))
                .isEqualTo(new PrefillCall.Replacement("deadline", true));
        assertThat(PrefillCall.replacement(new IllegalStateException("channel", new IOException("reset"))))
                .isEqualTo(new PrefillCall.Replacement("lost", true));
    }

    @Test
    void aWorkerThatAnsweredStaysInScheduling() {
        assertThat(PrefillCall.replacement(answered(503, "kv_deadline")))
                .isEqualTo(new PrefillCall.Replacement("deadline", false));
        assertThat(PrefillCall.replacement(answered(503, "draining")))
                .isEqualTo(new PrefillCall.Replacement("handed_back", false));
        assertThat(PrefillCall.replacement(answered(502, "kv_transfer_failed")))
                .isEqualTo(new PrefillCall.Replacement("transfer_failed", false));
        assertThat(PrefillCall.replacement(
                        CallNotPermittedException.createCallNotPermittedException(CircuitBreaker.ofDefaults("w"))))
                .isEqualTo(new PrefillCall.Replacement("lost", false));
    }

    @Test
    void aFailureThatAnotherPlacementWouldRepeatIsTheClients() {
        assertThat(PrefillCall.replacement(answered(400, "bad_request"))).isNull();
        assertThat(PrefillCall.replacement(new IllegalArgumentException("a bad answer")))
                .isNull();
        assertThat(PrefillCall.replacement(new RequestFailure(RequestFailure.Kind.BAD_WORKER_ANSWER, "bad", null)))
                .isNull();
        assertThat(PrefillCall.replacement(answered(500, "internal_error"))).isNull();
    }
}
