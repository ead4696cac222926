package dev.mooncakej.archprobe.a;

import dev.mooncakej.archprobe.b.B;

/** Architecture probe: half of a package cycle. */
public final class A {
    public B b;
}
