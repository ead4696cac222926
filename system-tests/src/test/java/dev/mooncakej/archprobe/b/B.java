package dev.mooncakej.archprobe.b;

import dev.mooncakej.archprobe.a.A;

/** Architecture probe: the other half of a package cycle. */
public final class B {
    public A a;
}
