package dev.mooncakej.kvcache.wire;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/** The pool pin messages' bytes (test vectors) and the refusal of malformed ones, by name. */
class PoolPinTest {
    @Test
    void eachMessageHasItsPublishedBytes() {
        byte[] pin = PoolPin.pin(7, new long[] {1}, new long[] {4096}).encode();
        assertThat(HexFormat.of().formatHex(pin))
                .isEqualTo("1101000001000000" + "0700000000000000" + "0100000000000000" + "0010000000000000");
        assertThat(HexFormat.of().formatHex(PoolPin.unpin(7).encode()))
                .isEqualTo("1201000000000000" + "0700000000000000");
        byte[] promote = PoolPin.promote(new long[] {2}, new long[] {512}).encode();
        assertThat(HexFormat.of().formatHex(promote))
                .isEqualTo("1301000001000000" + "0000000000000000" + "0200000000000000" + "0002000000000000");
        for (byte[] m : new byte[][] {pin, promote, PoolPin.unpin(7).encode()}) {
            assertThat(PoolPin.isPoolPin(m)).isTrue();
            PoolPin back = PoolPin.decode(m);
            assertThat(back.encode()).isEqualTo(m);
        }
        assertThat(PoolPin.isPoolPin(KvControl.claim(1, "p").encode())).isFalse();
    }

    @Test
    void malformedMessagesAreRefusedByName() {
        byte[] pin = PoolPin.pin(7, new long[] {1, 2}, new long[] {0, 64}).encode();
        byte[] shortened = Arrays.copyOf(pin, pin.length - 8);
        assertThatThrownBy(() -> PoolPin.decode(shortened)).hasMessageContaining("says 2 blocks");
        byte[] version = pin.clone();
        version[1] = 9;
        assertThatThrownBy(() -> PoolPin.decode(version)).hasMessageContaining("version 9");
        byte[] type = pin.clone();
        type[0] = 0x19;
        assertThatThrownBy(() -> PoolPin.decode(type)).hasMessageContaining("expected 0x11 (PIN)");
        assertThatThrownBy(() -> PoolPin.promote(new long[0], new long[0])).hasMessageContaining("expected 1..255");
        assertThatThrownBy(() -> PoolPin.decode(new byte[3])).hasMessageContaining("expected at least 16");
    }
}
