package dev.mooncakej.simulator;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

/** {@code --offset} and {@code --requests}: a window from the middle of a trace starts at once. */
class TraceWindowTest {
    private static final List<TraceRequest> TRACE = List.of(
            new TraceRequest(0, 0.0, 100, 10, new long[] {1}),
            new TraceRequest(1, 2.0, 200, 20, new long[] {2}),
            new TraceRequest(2, 3.5, 300, 30, new long[] {3}),
            new TraceRequest(3, 7.0, 400, 40, new long[] {4}));

    @Test
    void aWindowIsRenumberedAndItsArrivalsCountFromItsFirst() {
        List<TraceRequest> w = Traces.window(TRACE, 1, 2);
        assertThat(w).extracting(TraceRequest::index).containsExactly(0, 1);
        assertThat(w).extracting(TraceRequest::arrival).containsExactly(0.0, 1.5);
        assertThat(w).extracting(TraceRequest::inputTokens).containsExactly(200, 300);
        assertThat(Traces.window(TRACE, 2, 0))
                .extracting(TraceRequest::inputTokens)
                .containsExactly(300, 400);
        assertThat(Traces.window(TRACE, 0, 99)).hasSize(4);
    }

    @Test
    void anOffsetPastTheEndIsRefusedByName() {
        assertThatThrownBy(() -> Traces.window(TRACE, 4, 0))
                .hasMessageContaining("--offset 4")
                .hasMessageContaining("only 4 requests");
        assertThatThrownBy(() -> Traces.window(TRACE, -1, 0)).hasMessageContaining("--offset -1");
    }
}
