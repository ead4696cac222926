package dev.mooncakej.kvtransfer.verbs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvtransfer.engine.WorkerSegment;
import java.io.InputStream;
import java.net.InetAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.junit.jupiter.api.Test;

/**
 * GID choice, link layer, MTU negotiation and queue sizing against fixtures of four machine kinds
 * (src/test/resources/rdma-fixtures, described in its README): a ConnectX-5 on RoCE whose port lists
 * RoCE v1 and v2 GIDs for a link-local, an IPv4 and a VLAN address; a ConnectX-6 on InfiniBand with a
 * LID; the same before a subnet manager assigned one; and soft RoCE (rxe). The trees are laid out as
 * the kernel writes sysfs, including unused GID entries whose type cannot be read.
 */
class RdmaAddressingTest {
    private static Path sysfs(String machine) throws Exception {
        return Path.of(RdmaAddressingTest.class
                .getResource("/rdma-fixtures/" + machine + "/sysfs")
                .toURI());
    }

    private static RdmaAddressing.Caps caps(String machine) throws Exception {
        Properties p = new Properties();
        try (InputStream in = RdmaAddressingTest.class.getResourceAsStream(
                "/rdma-fixtures/" + machine + "/device-attributes.properties")) {
            p.load(in);
        }
        return new RdmaAddressing.Caps(
                Integer.parseInt(p.getProperty("max_qp_wr")),
                Integer.parseInt(p.getProperty("max_sge")),
                Integer.parseInt(p.getProperty("max_cqe")),
                Integer.parseInt(p.getProperty("max_qp_rd_atom")),
                Integer.parseInt(p.getProperty("max_qp_init_rd_atom")));
    }

    private static int activeMtu(String machine) throws Exception {
        Properties p = new Properties();
        try (InputStream in = RdmaAddressingTest.class.getResourceAsStream(
                "/rdma-fixtures/" + machine + "/device-attributes.properties")) {
            p.load(in);
        }
        return Integer.parseInt(p.getProperty("active_mtu"));
    }

    private static List<InetAddress> ip(String a) throws Exception {
        return List.of(InetAddress.getByName(a));
    }

    @Test
    void roceChoosesTheRoceV2GidOfTheAdvertisedAddressNeverTheV1LinkLocalOneAtIndexZero() throws Exception {
        RdmaAddressing.Port p =
                RdmaAddressing.readPort(sysfs("roce-connectx5"), "mlx5_0", 1, activeMtu("roce-connectx5"));
        assertThat(p.linkLayer()).isEqualTo(RdmaAddressing.LinkLayer.ETHERNET);
        assertThat(p.state()).isEqualTo("4: ACTIVE");
        assertThat(p.gids())
                .as("used entries only: 6 and 7 are zero with no type")
                .extracting(RdmaAddressing.Gid::index)
                .containsExactly(0, 1, 2, 3, 4, 5);
        assertThat(p.gids().get(0).type()).isEqualTo("IB/RoCE v1");
        assertThat(p.gids().get(0).linkLocal()).isTrue();

        RdmaAddressing.Choice c = RdmaAddressing.choose(p, -1, ip("10.0.1.5"));
        assertThat(c.index()).as(c.why()).isEqualTo(3);
        assertThat(c.why()).contains("RoCE v2").contains("10.0.1.5").contains("ens1f0np0");
        assertThat(RdmaAddressing.choose(p, -1, ip("192.168.100.5")).index())
                .as("the VLAN address's RoCE v2 GID")
                .isEqualTo(5);
        assertThat(RdmaAddressing.choose(p, -1, ip("127.0.0.1")).index())
                .as("an address the port does not carry: the first RoCE v2 IPv4 GID")
                .isEqualTo(3);
        assertThat(RdmaAddressing.choose(p, -1, List.of()).index()).isEqualTo(3);
        assertThat(RdmaAddressing.choose(p, 2, List.of()).index())
                .as("configured")
                .isEqualTo(2);
        assertThatThrownBy(() -> RdmaAddressing.choose(p, 7, List.of()))
                .hasMessageContaining("gid-index=7")
                .hasMessageContaining("3 (RoCE v2)");
        assertThat(RdmaAddressing.formatGid(c.gid())).isEqualTo("0000:0000:0000:0000:0000:ffff:0a00:0105");

        RdmaAddressing.Port down = RdmaAddressing.readPort(sysfs("roce-connectx5"), "mlx5_1", 1, 3);
        assertThat(down.state()).isEqualTo("1: DOWN");
        assertThat(RdmaAddressing.choose(down, -1, List.of()).why())
                .as("a port with only link-local GIDs (no address yet)")
                .contains("only a link-local RoCE v2 GID");

        RdmaAddressing.Port rxe = RdmaAddressing.readPort(sysfs("softroce-rxe"), "rxe0", 1, activeMtu("softroce-rxe"));
        assertThat(RdmaAddressing.choose(rxe, -1, ip("192.168.122.11")).index()).isEqualTo(3);
    }

    @Test
    void roceV1OnlyPortsAreUsedWithAWarningAndAPortWithoutGidsIsExplained() {
        byte[] ll = RdmaAddressing.parseGid("fe80:0000:0000:0000:0000:0000:0000:0001");
        RdmaAddressing.Port v1 = new RdmaAddressing.Port(
                "old0",
                1,
                RdmaAddressing.LinkLayer.ETHERNET,
                "4: ACTIVE",
                0,
                3,
                List.of(new RdmaAddressing.Gid(0, ll, "IB/RoCE v1", "eth0")));
        assertThat(RdmaAddressing.choose(v1, -1, List.of()).why()).contains("RoCE v1 only");
        RdmaAddressing.Port none =
                new RdmaAddressing.Port("old0", 1, RdmaAddressing.LinkLayer.ETHERNET, "4: ACTIVE", 0, 3, List.of());
        assertThatThrownBy(() -> RdmaAddressing.choose(none, -1, List.of())).hasMessageContaining("IP address");
    }

    @Test
    void infinibandRoutesByLidWithThePortGidAndRefusesAPortWithoutALid() throws Exception {
        RdmaAddressing.Port p = RdmaAddressing.readPort(sysfs("ib-connectx6"), "mlx5_0", 1, activeMtu("ib-connectx6"));
        assertThat(p.linkLayer()).isEqualTo(RdmaAddressing.LinkLayer.INFINIBAND);
        assertThat(p.lid()).isEqualTo(0x1a);
        RdmaAddressing.Choice c = RdmaAddressing.choose(p, -1, ip("10.0.1.5"));
        assertThat(c.index()).isZero();
        assertThat(c.why()).contains("LID 26");
        RdmaAddressing.Port noSm = RdmaAddressing.readPort(sysfs("ib-no-sm"), "mlx5_0", 1, 5);
        assertThatThrownBy(() -> RdmaAddressing.choose(noSm, -1, List.of()))
                .hasMessageContaining("no unicast LID")
                .hasMessageContaining("subnet manager");
        // the same subnet prefix: LID routing, no global header; another subnet: a global header
        byte[] other = RdmaAddressing.parseGid("fe80:0000:0000:0001:b859:9f03:00d1:2e40");
        assertThat(RdmaAddressing.otherSubnet(c.gid(), c.gid())).isFalse();
        assertThat(RdmaAddressing.otherSubnet(c.gid(), other)).isTrue();
    }

    @Test
    void thePathMtuIsTheSmallerActiveMtuOfBothPorts() throws Exception {
        int roce = activeMtu("roce-connectx5"), ib = activeMtu("ib-connectx6");
        assertThat(RdmaAddressing.mtuBytes(roce)).isEqualTo(1024);
        assertThat(RdmaAddressing.mtuBytes(ib)).isEqualTo(4096);
        assertThat(RdmaAddressing.negotiateMtu(ib, ib)).isEqualTo(5);
        assertThat(RdmaAddressing.negotiateMtu(ib, roce)).isEqualTo(roce);
        assertThat(RdmaAddressing.negotiateMtu(roce, ib)).isEqualTo(roce);
        assertThatThrownBy(() -> RdmaAddressing.negotiateMtu(5, 9)).hasMessageContaining("peer's active MTU enum 9");
    }

    @Test
    void queuesAreSizedFromTheDevicesLimitsAndTheSettings() throws Exception {
        RdmaAddressing.QueuePlan cx5 = RdmaAddressing.QueuePlan.of(caps("roce-connectx5"), RdmaSettings.DEFAULTS);
        assertThat(cx5).isEqualTo(new RdmaAddressing.QueuePlan(256, 16384, 16));
        RdmaSettings big = RdmaSettings.DEFAULTS.withQueues(4096, 1 << 20, 5000);
        RdmaAddressing.QueuePlan rxe = RdmaAddressing.QueuePlan.of(caps("softroce-rxe"), big);
        assertThat(rxe.cqEntries()).as("rxe's max_cqe").isEqualTo(32767);
        assertThat(rxe.sendWr()).isEqualTo(4096);
        assertThat(rxe.rdAtomic())
                .as("read depth capped at 16 even where the device allows 128")
                .isEqualTo(16);
        RdmaAddressing.QueuePlan small = RdmaAddressing.QueuePlan.of(new RdmaAddressing.Caps(128, 1, 64, 4, 8), big);
        assertThat(small)
                .as("no QP may hold more than the CQ it completes into")
                .isEqualTo(new RdmaAddressing.QueuePlan(64, 64, 4));
    }

    @Test
    void settingsKeysAreValidatedByName() {
        RdmaSettings s = RdmaSettings.fromKeys(
                "mooncakej.prefill.kv-rdma.",
                Map.of("gid-index", "3", "devices", "mlx5_0, mlx5_1", "traffic-class", "106"));
        assertThat(s.gidIndex()).isEqualTo(3);
        assertThat(s.devices()).containsExactly("mlx5_0", "mlx5_1");
        assertThat(s.trafficClass()).isEqualTo(106);
        assertThatThrownBy(() -> RdmaSettings.fromKeys("mooncakej.prefill.kv-rdma.", Map.of("gid", "3")))
                .hasMessageContaining("mooncakej.prefill.kv-rdma.gid")
                .hasMessageContaining("gid-index");
        assertThatThrownBy(() -> RdmaSettings.fromKeys("p.", Map.of("service-level", "16")))
                .hasMessageContaining("p.service-level=16")
                .hasMessageContaining("0..15");
        assertThatThrownBy(() -> RdmaSettings.fromKeys("p.", Map.of("port", "one")))
                .hasMessageContaining("p.port=one: expected an integer");
        // a worker's settings: mooncakej.<role>.kv-rdma.* refused by its full name at start-up
        assertThatThrownBy(() -> WorkerSegment.config(
                        "mooncakej.prefill.kv-",
                        "rdma,tcp",
                        System.getProperty("java.io.tmpdir"),
                        "127.0.0.1",
                        0,
                        "a-cluster-secret-of-some-length",
                        1000,
                        Map.of("hop-limit", "0")))
                .hasMessageContaining("mooncakej.prefill.kv-rdma.hop-limit=0")
                .hasMessageContaining("1..255");
    }
}
