package dev.mooncakej.kvcache.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** The control channel's frames: each kind round-trips, and a frame whose lengths lie is refused by name. */
class ControlFrameTest {
    private static ControlFrame roundTrip(ControlFrame f) {
        return ControlFrame.decode(ByteBuffer.wrap(f.encode()));
    }

    @Test
    void everyKindRoundTrips() {
        ControlFrame call = roundTrip(ControlFrame.call(42, ControlFrame.PREFILL, "req-7", "{\"a\":1}"));
        assertThat(call.kind()).isEqualTo(ControlFrame.CALL);
        assertThat(call.call()).isEqualTo(42);
        assertThat(call.op()).isEqualTo(ControlFrame.PREFILL);
        assertThat(call.requestId()).isEqualTo("req-7");
        assertThat(call.text()).isEqualTo("{\"a\":1}");
        assertThat(call.trace()).isEmpty();
        String traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        ControlFrame traced = roundTrip(ControlFrame.call(43, ControlFrame.DECODE, "req-8", traceparent, "{}"));
        assertThat(traced.trace()).isEqualTo(traceparent);
        assertThat(traced.requestId()).isEqualTo("req-8");
        assertThat(traced.text()).isEqualTo("{}");

        assertThat(roundTrip(ControlFrame.reply(-1L, "{}")).text()).isEqualTo("{}");
        assertThat(roundTrip(ControlFrame.item(3, "{\"token\":5}")).kind()).isEqualTo(ControlFrame.ITEM);
        assertThat(roundTrip(ControlFrame.end(3)).ends()).isTrue();
        assertThat(roundTrip(ControlFrame.cancel(3)).ends()).isFalse();
        ControlFrame error =
                roundTrip(ControlFrame.error(9, 429, new WorkerMessages.WorkerError("kv_full", "no free KV blocks")));
        assertThat(error.status()).isEqualTo(429);
        assertThat(InternalJson.decode(error.text(), WorkerMessages.WorkerError.class)
                        .code())
                .isEqualTo("kv_full");
    }

    @Test
    void framesThatLieAreRefusedNamingWhat() {
        byte[] call = ControlFrame.call(1, ControlFrame.RESERVE, "abc", "{}").encode();
        call[11] = 100; // the request id's length: more bytes than the frame holds
        assertThatThrownBy(() -> ControlFrame.decode(ByteBuffer.wrap(call)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("request id of 100 bytes");
        byte[] op = ControlFrame.call(1, ControlFrame.RESERVE, "", "{}").encode();
        op[9] = 9;
        assertThatThrownBy(() -> ControlFrame.decode(ByteBuffer.wrap(op))).hasMessageContaining("operation 9");
        byte[] kind = ControlFrame.end(1).encode();
        kind[0] = 0;
        assertThatThrownBy(() -> ControlFrame.decode(ByteBuffer.wrap(kind))).hasMessageContaining("frame kind 0");
        assertThatThrownBy(() -> ControlFrame.decode(ByteBuffer.wrap(new byte[5])))
                .hasMessageContaining("expected at least 9");
        byte[] endWithPayload =
                ByteBuffer.allocate(12).put((byte) ControlFrame.END).putLong(1).array();
        assertThatThrownBy(() -> ControlFrame.decode(ByteBuffer.wrap(endWithPayload)))
                .hasMessageContaining("expected none");
        byte[] status = ControlFrame.error(1, 500, new WorkerMessages.WorkerError("x", "y"))
                .encode();
        status[9] = 0;
        status[10] = 7;
        assertThatThrownBy(() -> ControlFrame.decode(ByteBuffer.wrap(status))).hasMessageContaining("status 7");
        byte[] trace = ControlFrame.call(1, ControlFrame.RESERVE, "", "{}").encode();
        trace[12] = 60; // the trace's length: more than a traceparent
        assertThatThrownBy(() -> ControlFrame.decode(ByteBuffer.wrap(trace))).hasMessageContaining("trace of 60 bytes");
        assertThatThrownBy(() -> ControlFrame.call(1, ControlFrame.RESERVE, "", "00-not-a-trace", "{}"))
                .hasMessageContaining("trace 00-not-a-trace: expected a W3C traceparent");
    }
}
