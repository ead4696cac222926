package dev.mooncakej.kvtransfer.rdma;

/** What the two sides exchange to connect a queue pair. */
record RdmaHandshake(
        String segment,
        String device,
        String target,
        String linkLayer,
        int lid,
        String gid,
        int qpn,
        int mtu,
        int rdAtomic) {
    /** Refuses a handshake whose numbers no device could have produced, naming the field. */
    RdmaHandshake validated() {
        if (segment == null || !segment.matches("[A-Za-z0-9._-]{1,64}"))
            throw new IllegalArgumentException("rdma handshake: segment '" + segment + "'");
        if (device == null
                || target == null
                || !device.matches("[A-Za-z0-9_.-]{1,64}")
                || !target.matches("[A-Za-z0-9_.-]{1,64}"))
            throw new IllegalArgumentException("rdma handshake: device names '" + device + "', '" + target + "'");
        if (!"INFINIBAND".equals(linkLayer) && !"ETHERNET".equals(linkLayer))
            throw new IllegalArgumentException("rdma handshake: link layer '" + linkLayer + "'");
        if (lid < 0 || lid > 0xffff) throw new IllegalArgumentException("rdma handshake: lid " + lid);
        if (gid == null || !gid.matches("[0-9a-f]{32}"))
            throw new IllegalArgumentException("rdma handshake: gid '" + gid + "'");
        if (qpn < 1 || qpn > 0xffffff) throw new IllegalArgumentException("rdma handshake: qpn " + qpn);
        if (mtu < 1 || mtu > 5) throw new IllegalArgumentException("rdma handshake: mtu enum " + mtu);
        if (rdAtomic < 1 || rdAtomic > 255) throw new IllegalArgumentException("rdma handshake: rd " + rdAtomic);
        return this;
    }
}
