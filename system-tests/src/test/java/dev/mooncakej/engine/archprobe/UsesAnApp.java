package dev.mooncakej.engine.archprobe;

import dev.mooncakej.decode.archprobe.DecodeThing;

/** Architecture probe: the engine (a core) using an app's class. */
public final class UsesAnApp {
    public int read(DecodeThing t) {
        return t.value;
    }
}
