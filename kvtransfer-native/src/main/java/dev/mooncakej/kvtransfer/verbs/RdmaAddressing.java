package dev.mooncakej.kvtransfer.verbs;

import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * How an rdma endpoint is addressed, decided from what the device and the kernel report: the link
 * layer (InfiniBand routes by LID, RoCE by GID in a global route header), which GID (on RoCE the
 * kernel lists several per address, RoCE v1 and v2, and index 0 is the v1 link-local one, which does
 * not route across subnets), the path MTU (the smaller of both ports' active MTU) and the queue sizes
 * the device allows. Pure functions over {@link Port} and {@link Caps}, so they are tested against
 * sysfs trees and device attributes of real machines without the hardware.
 */
public final class RdmaAddressing {
    private RdmaAddressing() {}

    public enum LinkLayer {
        INFINIBAND,
        ETHERNET;

        /** From {@code ibv_port_attr.link_layer} (0 unspecified, which providers use for InfiniBand). */
        public static LinkLayer of(int code) {
            return code == 2 ? ETHERNET : INFINIBAND;
        }

        /** From sysfs {@code ports/N/link_layer} ("InfiniBand" or "Ethernet"). */
        public static LinkLayer parse(String s) {
            return s.trim().equalsIgnoreCase("Ethernet") ? ETHERNET : INFINIBAND;
        }
    }

    /** One GID table entry: index, 16 raw bytes, its type ("IB/RoCE v1", "RoCE v2") and network device. */
    public record Gid(int index, byte[] raw, String type, String netdev) {
        public boolean roceV2() {
            return type.equalsIgnoreCase("RoCE v2");
        }

        /** The IP address the GID carries (IPv4-mapped ::ffff:a.b.c.d, or the IPv6 address itself). */
        public InetAddress address() {
            try {
                return InetAddress.getByAddress(raw);
            } catch (UnknownHostException e) {
                throw new IllegalStateException(e);
            }
        }

        public boolean ipv4() {
            for (int i = 0; i < 10; i++) if (raw[i] != 0) return false;
            return (raw[10] & 0xff) == 0xff && (raw[11] & 0xff) == 0xff;
        }

        public boolean linkLocal() {
            return (raw[0] & 0xff) == 0xfe && (raw[1] & 0xc0) == 0x80;
        }

        public String text() {
            return formatGid(raw);
        }
    }

    /** A port as the transport sees it: link layer, state, LID, active MTU (enum 1..5) and GID table. */
    public record Port(
            String device, int port, LinkLayer linkLayer, String state, int lid, int activeMtu, List<Gid> gids) {}

    /** The device limits that bound queue sizes ({@code ibv_query_device}). */
    public record Caps(int maxQpWr, int maxSge, int maxCqe, int maxQpRdAtom, int maxQpInitRdAtom) {}

    /** The GID this side will use: its index, bytes, and why it was chosen. */
    public record Choice(int index, byte[] gid, String why) {}

    /** What one queue pair and one completion queue are sized to on a device. */
    public record QueuePlan(int sendWr, int cqEntries, int rdAtomic) {
        public static QueuePlan of(Caps caps, RdmaSettings s) {
            int wr = Math.min(s.maxOutstanding(), Math.max(1, caps.maxQpWr()));
            int cq = Math.min(s.cqEntries(), Math.max(1, caps.maxCqe()));
            int rd = Math.max(1, Math.min(16, Math.min(caps.maxQpRdAtom(), caps.maxQpInitRdAtom())));
            return new QueuePlan(Math.min(wr, cq), cq, rd);
        }
    }

    /** The sysfs GID table of a port: entries that are all zero or whose type the kernel cannot name are unused. */
    public static List<Gid> readGids(Path sysfsRoot, String device, int port) {
        Path dir = sysfsRoot.resolve(device).resolve("ports").resolve(String.valueOf(port));
        List<Gid> out = new ArrayList<>();
        Path gids = dir.resolve("gids");
        if (!Files.isDirectory(gids)) return out;
        for (int i = 0; i < 256; i++) {
            Path g = gids.resolve(String.valueOf(i));
            if (!Files.exists(g)) break;
            byte[] raw = parseGid(read(g));
            if (raw == null || Arrays.equals(raw, new byte[16])) continue;
            String type = read(dir.resolve("gid_attrs/types/" + i)); // EINVAL for an unused entry
            if (type == null || type.isBlank()) continue;
            String ndev = read(dir.resolve("gid_attrs/ndevs/" + i));
            out.add(new Gid(i, raw, type.trim(), ndev == null ? "" : ndev.trim()));
        }
        return out;
    }

    /** The port as sysfs describes it (link layer, state, LID), with the active MTU from the device. */
    public static Port readPort(Path sysfsRoot, String device, int port, int activeMtu) {
        Path dir = sysfsRoot.resolve(device).resolve("ports").resolve(String.valueOf(port));
        String ll = read(dir.resolve("link_layer"));
        String state = read(dir.resolve("state"));
        String lid = read(dir.resolve("lid"));
        return new Port(
                device,
                port,
                ll == null ? LinkLayer.INFINIBAND : LinkLayer.parse(ll),
                state == null ? "unknown" : state.trim(),
                lid == null ? 0 : Integer.decode(lid.trim()),
                activeMtu,
                readGids(sysfsRoot, device, port));
    }

    /**
     * The GID to use. A configured index must name a used entry. Otherwise: on InfiniBand the port GID
     * (index 0) with the LID, which must be assigned (a subnet manager must be running); on RoCE the
     * RoCE v2 GID whose address is one of {@code preferred} (the advertised address), else the first
     * RoCE v2 IPv4 GID, else the first RoCE v2 GID, and RoCE v1 only when the port has nothing else.
     */
    public static Choice choose(Port p, int configured, List<InetAddress> preferred) {
        String where = p.device() + " port " + p.port();
        if (configured >= 0) {
            for (Gid g : p.gids())
                if (g.index() == configured)
                    return new Choice(
                            configured, g.raw(), "gid-index " + configured + " as configured (" + g.type() + ")");
            throw new IllegalArgumentException("rdma gid-index=" + configured + ": " + where
                    + " has no GID at that index; used entries are "
                    + p.gids().stream()
                            .map(g -> g.index() + " (" + g.type() + ")")
                            .toList());
        }
        if (p.linkLayer() == LinkLayer.INFINIBAND) {
            if (p.lid() == 0 || p.lid() >= 0xc000)
                throw new IllegalStateException(where + " is InfiniBand with no unicast LID (state " + p.state()
                        + "): is a subnet manager (opensm) running on the fabric?");
            Gid g0 = p.gids().stream().filter(g -> g.index() == 0).findFirst().orElse(null);
            return new Choice(0, g0 == null ? new byte[16] : g0.raw(), "InfiniBand: LID " + p.lid() + ", port GID 0");
        }
        List<Gid> v2 = p.gids().stream().filter(Gid::roceV2).toList();
        for (InetAddress want : preferred)
            for (Gid g : v2)
                if (g.address().equals(want) || ipv4Of(g).equals(want))
                    return new Choice(
                            g.index(), g.raw(), "RoCE v2 GID of " + want.getHostAddress() + " on " + g.netdev());
        for (Gid g : v2)
            if (g.ipv4())
                return new Choice(
                        g.index(),
                        g.raw(),
                        "first RoCE v2 IPv4 GID (" + ipv4Of(g).getHostAddress() + ")");
        for (Gid g : v2) if (!g.linkLocal()) return new Choice(g.index(), g.raw(), "first routable RoCE v2 GID");
        if (!v2.isEmpty()) return new Choice(v2.get(0).index(), v2.get(0).raw(), "only a link-local RoCE v2 GID");
        if (!p.gids().isEmpty())
            return new Choice(
                    p.gids().get(0).index(),
                    p.gids().get(0).raw(),
                    "RoCE v1 only (works inside one layer-2 network; enable RoCE v2 to route across subnets)");
        throw new IllegalStateException(where + " is RoCE but lists no GID in sysfs: is an IP address configured on "
                + "its network interface?");
    }

    private static InetAddress ipv4Of(Gid g) {
        if (!g.ipv4()) return g.address();
        try {
            return InetAddress.getByAddress(Arrays.copyOfRange(g.raw(), 12, 16));
        } catch (UnknownHostException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The path MTU both ends can carry: the smaller active MTU (ibv_mtu enum 1..5, 256..4096 bytes). */
    public static int negotiateMtu(int local, int remote) {
        if (local < 1 || local > 5)
            throw new IllegalArgumentException("local active MTU enum " + local + ": expected 1..5");
        if (remote < 1 || remote > 5)
            throw new IllegalArgumentException("peer's active MTU enum " + remote + ": expected 1..5");
        return Math.min(local, remote);
    }

    public static int mtuBytes(int mtuEnum) {
        return 128 << mtuEnum;
    }

    /** Whether two InfiniBand GIDs are in different subnets (then the route needs a global header). */
    public static boolean otherSubnet(byte[] local, byte[] remote) {
        return !Arrays.equals(Arrays.copyOf(local, 8), Arrays.copyOf(remote, 8))
                && !Arrays.equals(remote, new byte[16]);
    }

    /** The addresses a host name stands for (empty when it does not resolve). */
    public static List<InetAddress> addressesOf(String host) {
        try {
            return List.of(InetAddress.getAllByName(host));
        } catch (UnknownHostException e) {
            return List.of();
        }
    }

    /** "fe80:0000:...:0001" as sysfs writes it; null when it is not one. */
    public static byte[] parseGid(String s) {
        if (s == null) return null;
        String hex = s.trim().replace(":", "");
        if (!hex.matches("[0-9a-fA-F]{32}")) return null;
        return HexFormat.of().parseHex(hex);
    }

    public static String formatGid(byte[] raw) {
        String h = HexFormat.of().formatHex(raw);
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 32; i += 4) b.append(i == 0 ? "" : ":").append(h, i, i + 4);
        return b.toString();
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
