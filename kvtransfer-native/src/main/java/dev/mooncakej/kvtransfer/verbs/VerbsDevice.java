package dev.mooncakej.kvtransfer.verbs;

import java.lang.foreign.MemorySegment;

/**
 * An opened device: context, protection domain, one completion queue sized by its {@code plan}, the
 * port in use with its link layer, LID, chosen GID and active MTU, and the device's limits.
 */
public record VerbsDevice(
        String name,
        MemorySegment context,
        MemorySegment pd,
        MemorySegment cq,
        int port,
        RdmaAddressing.LinkLayer linkLayer,
        int lid,
        byte[] gid,
        int gidIndex,
        int activeMtu,
        RdmaAddressing.Caps caps,
        RdmaAddressing.QueuePlan plan,
        int asyncFd,
        String gidWhy) {}
