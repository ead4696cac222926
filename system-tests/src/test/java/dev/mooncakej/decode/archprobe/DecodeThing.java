package dev.mooncakej.decode.archprobe;

/** Architecture probe: a class of an app (the decode worker) that nothing else may use. */
public final class DecodeThing {
    public int value;
}
