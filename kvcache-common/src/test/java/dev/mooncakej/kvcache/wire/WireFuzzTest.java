package dev.mooncakej.kvcache.wire;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvcache.wire.WorkerMessages.DecodeTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.LoadReport;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillResult;
import dev.mooncakej.kvcache.wire.WorkerMessages.PrefillTask;
import dev.mooncakej.kvcache.wire.WorkerMessages.StoreHeld;
import dev.mooncakej.kvcache.wire.WorkerMessages.StorePut;
import java.nio.ByteBuffer;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;

/**
 * Fuzzing the decoders of every message a worker or the conductor reads from the network (binary
 * control frames and JSON): any input is either decoded or refused with an
 * IllegalArgumentException whose message says what was wrong, never another exception, never a hang.
 * jqwik, a fixed number of tries each (the CI budget).
 */
class WireFuzzTest {
    private static void refusedOrDecoded(Runnable decode) {
        try {
            decode.run();
        } catch (IllegalArgumentException e) {
            assertThat(e.getMessage()).isNotBlank();
        }
    }

    @Property(tries = 3000)
    void binaryControlFramesAreDecodedOrRefused(@ForAll @Size(max = 600) byte[] frame) {
        refusedOrDecoded(() -> PoolPin.decode(frame));
        refusedOrDecoded(() -> KvControl.decode(frame));
        refusedOrDecoded(() -> ControlFrame.decode(ByteBuffer.wrap(frame)));
    }

    @Property(tries = 3000)
    void aChannelFrameWithOneByteChangedIsDecodedOrRefused(
            @ForAll("calls") byte[] frame, @ForAll int position, @ForAll byte value) {
        byte[] f = frame.clone();
        f[Math.floorMod(position, f.length)] = value;
        refusedOrDecoded(() -> ControlFrame.decode(ByteBuffer.wrap(f)));
    }

    @Provide
    Arbitrary<byte[]> calls() {
        return Arbitraries.strings()
                .ofMaxLength(40)
                .map(rid -> ControlFrame.call(rid.length(), 1 + rid.length() % 4, rid, "{\"reservationId\":1}")
                        .encode());
    }

    @Property(tries = 3000)
    void aValidFrameWithOneByteChangedIsDecodedOrRefused(
            @ForAll("pins") byte[] frame, @ForAll int position, @ForAll byte value) {
        byte[] f = frame.clone();
        f[Math.floorMod(position, f.length)] = value;
        refusedOrDecoded(() -> PoolPin.decode(f));
    }

    @Provide
    Arbitrary<byte[]> pins() {
        return Arbitraries.longs()
                .array(long[].class)
                .ofMinSize(1)
                .ofMaxSize(255)
                .map(keys -> PoolPin.pin(7, keys, keys.clone()).encode());
    }

    @Property(tries = 2000)
    void jsonMessagesAreDecodedOrRefused(@ForAll("jsonish") String text) {
        for (Class<?> type : new Class<?>[] {
            PrefillTask.class, PrefillResult.class, DecodeTask.class, LoadReport.class, StoreHeld.class, StorePut.class
        }) {
            refusedOrDecoded(() -> InternalJson.decode(text, type));
        }
    }

    /** Text that is mostly JSON: fragments of the real messages, shuffled, cut and spliced. */
    @Provide
    Arbitrary<String> jsonish() {
        Arbitrary<String> piece = Arbitraries.of(
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                "\"reservationId\"",
                "\"tokens\"",
                "\"kv\"",
                "\"segment\"",
                "\"blockOffsets\"",
                "\"sampling\"",
                "\"keys\"",
                "\"storedKeys\"",
                "\"x\"",
                "null",
                "true",
                "-1",
                "1e309",
                "9223372036854775808",
                "\"\\u0000\"",
                "0",
                "1.5",
                "\"a\"",
                " ");
        return Arbitraries.oneOf(
                piece.list().ofMaxSize(40).map(l -> String.join("", l)),
                Arbitraries.strings().ofMaxLength(200));
    }
}
