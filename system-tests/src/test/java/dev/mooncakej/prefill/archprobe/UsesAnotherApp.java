package dev.mooncakej.prefill.archprobe;

import dev.mooncakej.decode.archprobe.DecodeThing;

/** Architecture probe: one app (the prefill worker) using another's class. */
public final class UsesAnotherApp {
    public int read(DecodeThing t) {
        return t.value;
    }
}
