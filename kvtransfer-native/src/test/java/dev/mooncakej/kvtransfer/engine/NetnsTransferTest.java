package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two hosts on one machine: two network namespaces joined by a veth pair, a peer process in each
 * (started with {@code ip netns exec}), a transfer across them over tcp verified byte for byte; then a
 * {@code tc tbf} bandwidth cap on the serving side, which the engine's measured bandwidth must
 * reflect. Needs root (this machine's CI runs as root); elsewhere it prints why it skipped.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class NetnsTransferTest {
    @TempDir
    Path shm;

    private static void sh(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) throw new IllegalStateException(String.join(" ", cmd) + " failed: " + out);
    }

    @Test
    void transferAcrossAVethPairAndABandwidthCapThatTheEngineMeasures() throws Exception {
        boolean root = "root".equals(System.getProperty("user.name"));
        boolean ip = new File("/usr/sbin/ip").canExecute()
                || new File("/sbin/ip").canExecute()
                || new File("/usr/bin/ip").canExecute();
        if (!root || !ip)
            System.out.println(
                    "[skip] network-namespace test: needs root and iproute2 (root=" + root + ", ip=" + ip + ")");
        Assumptions.assumeTrue(root && ip, "needs root and iproute2");
        String tag = Integer.toHexString(ThreadLocalRandom.current().nextInt(0x10000, 0xfffff));
        String nsA = "mcj-a-" + tag, nsB = "mcj-b-" + tag, vA = "mcja" + tag, vB = "mcjb" + tag;
        int net = 10 + ThreadLocalRandom.current().nextInt(200);
        String ipA = "10.231." + net + ".1", ipB = "10.231." + net + ".2";
        List<Process> procs = new ArrayList<>();
        try {
            sh("ip", "netns", "add", nsA);
            sh("ip", "netns", "add", nsB);
            sh("ip", "link", "add", vA, "type", "veth", "peer", "name", vB);
            sh("ip", "link", "set", vA, "netns", nsA);
            sh("ip", "link", "set", vB, "netns", nsB);
            sh("ip", "-n", nsA, "addr", "add", ipA + "/24", "dev", vA);
            sh("ip", "-n", nsB, "addr", "add", ipB + "/24", "dev", vB);
            for (String[] nv : new String[][] {{nsA, vA}, {nsB, vB}}) {
                sh("ip", "-n", nv[0], "link", "set", nv[1], "up");
                sh("ip", "-n", nv[0], "link", "set", "lo", "up");
            }
            ProcessBuilder peerPb =
                    Engines.childJvm(PeerMain.class, "ns-peer", String.valueOf(32L << 20), shm.toString(), ipB);
            peerPb.command().addAll(0, List.of("ip", "netns", "exec", nsB));
            Process peer = peerPb.start();
            procs.add(peer);
            String descriptor = new BufferedReader(new InputStreamReader(peer.getInputStream())).readLine();
            assertThat(DescriptorJson.read(descriptor, "peer").rpcHost()).isEqualTo(ipB);

            double free = fetch(nsA, ipA, descriptor, 256L << 20, procs);
            System.out.printf("across the veth pair, uncapped: %.3f GB/s%n", free / 1e9);

            long rateBytes = 50_000_000; // 400 Mbit/s
            sh(
                    "ip", "netns", "exec", nsB, "tc", "qdisc", "add", "dev", vB, "root", "tbf", "rate", "400mbit",
                    "burst", "256kb", "latency", "100ms");
            double capped = fetch(nsA, ipA, descriptor, 64L << 20, procs);
            System.out.printf(
                    "with tc tbf rate 400mbit (%.1f MB/s): the engine measured %.1f MB/s (%.2f of the cap)%n",
                    rateBytes / 1e6, capped / 1e6, capped / rateBytes);
            assertThat(capped / rateBytes)
                    .as("measured bandwidth against the tbf cap")
                    .isBetween(0.75, 1.05);
            assertThat(free).as("uncapped is well above the cap").isGreaterThan(3.0 * rateBytes);
        } finally {
            for (Process p : procs) p.destroyForcibly().waitFor();
            new ProcessBuilder("ip", "netns", "del", nsA).start().waitFor();
            new ProcessBuilder("ip", "netns", "del", nsB).start().waitFor();
        }
    }

    /** Runs FetchMain in namespace ns; returns its bytes per second. */
    private static double fetch(String ns, String host, String descriptor, long bytes, List<Process> procs)
            throws Exception {
        ProcessBuilder pb = Engines.childJvm(FetchMain.class, host, String.valueOf(bytes));
        pb.command().addAll(0, List.of("ip", "netns", "exec", ns));
        Process p = pb.start();
        procs.add(p);
        try (OutputStream in = p.getOutputStream()) {
            in.write((descriptor + "\n").getBytes(StandardCharsets.UTF_8));
        }
        String line = new BufferedReader(new InputStreamReader(p.getInputStream())).readLine();
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue())
                .as("fetch process (byte-for-byte check inside)")
                .isZero();
        String[] parts = line.trim().split(" ");
        return Long.parseLong(parts[0]) / Double.parseDouble(parts[1]);
    }
}
