package dev.mooncakej.conductor.workers;

import dev.mooncakej.kvcache.wire.ControlFrame;

/** The worker operations the conductor calls, with their control-channel frame and HTTP route. */
enum WorkerOp {
    RESERVE(ControlFrame.RESERVE, "/internal/reserve"),
    PREFILL(ControlFrame.PREFILL, "/internal/prefill"),
    DECODE(ControlFrame.DECODE, "/internal/decode"),
    /** HTTP: {@code DELETE /internal/reservations/{id}}. */
    RELEASE(ControlFrame.RELEASE, "/internal/reservations/");

    final int frame;
    final String route;

    WorkerOp(int frame, String route) {
        this.frame = frame;
        this.route = route;
    }
}
