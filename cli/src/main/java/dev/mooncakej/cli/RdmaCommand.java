package dev.mooncakej.cli;

import dev.mooncakej.kvtransfer.engine.LocalSegmentRegistry;
import dev.mooncakej.kvtransfer.engine.SegmentMetadata;
import dev.mooncakej.kvtransfer.engine.TransferBatch;
import dev.mooncakej.kvtransfer.engine.TransferEngine;
import dev.mooncakej.kvtransfer.engine.TransferRequest;
import dev.mooncakej.kvtransfer.spi.TransferConfig;
import dev.mooncakej.kvtransfer.verbs.RdmaAddressing;
import dev.mooncakej.kvtransfer.verbs.RdmaSettings;
import dev.mooncakej.kvtransfer.verbs.Verbs;
import dev.mooncakej.kvtransfer.verbs.VerbsDevice;
import dev.mooncakej.kvtransfer.verbs.VerbsLib;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
        name = "rdma",
        description = "RDMA bring-up.",
        subcommands = {RdmaCommand.Doctor.class, RdmaCommand.Peer.class})
final class RdmaCommand {
    /** Exit status when there is no usable device (the reason is printed). */
    static final int NO_DEVICE = 2;
    /** Exit status when devices are there but the loopback transfer failed. */
    static final int LOOPBACK_FAILED = 3;

    private static final int BYTES = 1 << 20;

    @Command(
            name = "doctor",
            description = "Lists RDMA devices, ports, link layers, MTUs and GIDs (with the one the transport "
                    + "would choose), checks the memlock limit, and tries a loopback RC connection with a small "
                    + "verified transfer; or says exactly why it cannot. Exit 0 when the loopback passes, "
                    + NO_DEVICE + " with no usable device, " + LOOPBACK_FAILED + " when the loopback fails.")
    static final class Doctor implements Callable<Integer> {
        @Option(names = "--verbs-library", defaultValue = "libibverbs.so.1", description = "libibverbs to load")
        String library;

        @Option(
                names = "--sysfs-root",
                defaultValue = "/sys/class/infiniband",
                description = "where devices are listed")
        Path sysfs;

        @Option(names = "--devices", defaultValue = "", description = "comma-separated devices (empty: all)")
        String devices;

        @Option(names = "--port", defaultValue = "1", description = "HCA port")
        int port;

        @Option(names = "--gid-index", defaultValue = "-1", description = "GID index (-1: choose)")
        int gidIndex;

        @Option(names = "--advertise", defaultValue = "127.0.0.1", description = "the address peers will use")
        String advertise;

        @Option(
                names = "--loopback",
                defaultValue = "process",
                description = "process (two processes), thread (one process; for a fake provider) or none")
        String loopback;

        @Override
        public Integer call() throws Exception {
            if (!List.of("process", "thread", "none").contains(loopback))
                throw new IllegalArgumentException("--loopback " + loopback + ": expected process, thread or none");
            RdmaSettings s = RdmaSettings.fromKeys(
                    "--",
                    Map.of(
                            "devices", devices,
                            "port", String.valueOf(port),
                            "gid-index", String.valueOf(gidIndex),
                            "sysfs-root", sysfs.toString()));
            System.out.println("rdma doctor");
            memlock();
            Verbs.Probe probe = library.equals("libibverbs.so.1") ? Verbs.probe() : null;
            if (probe != null && !probe.available()) {
                System.out.println("devices: none: " + probe.reason());
                System.out.println("next: " + advice(probe.reason()));
                return NO_DEVICE;
            }
            VerbsLib verbs;
            try {
                verbs = new VerbsLib(library);
            } catch (RuntimeException e) {
                System.out.println("devices: none: cannot load " + library + ": " + e.getMessage());
                System.out.println(
                        "next: apt-get install rdma-core ibverbs-providers (or point --verbs-library at it)");
                return NO_DEVICE;
            }
            List<String> skipped = new ArrayList<>();
            List<VerbsDevice> devices = verbs.openAll(s, RdmaAddressing.addressesOf(advertise), skipped);
            try {
                listSysfs(s);
                for (VerbsDevice d : devices) {
                    System.out.printf(
                            "%s port %d: %s, active, MTU %d, LID %d; limits: max_qp_wr %d, max_cqe %d, "
                                    + "max_qp_rd_atom %d; queues: send %d, CQ %d, read depth %d%n",
                            d.name(),
                            d.port(),
                            d.linkLayer(),
                            RdmaAddressing.mtuBytes(d.activeMtu()),
                            d.lid(),
                            d.caps().maxQpWr(),
                            d.caps().maxCqe(),
                            d.caps().maxQpRdAtom(),
                            d.plan().sendWr(),
                            d.plan().cqEntries(),
                            d.plan().rdAtomic());
                    System.out.printf(
                            "  chosen GID %d %s (%s)%n", d.gidIndex(), RdmaAddressing.formatGid(d.gid()), d.gidWhy());
                }
                for (String why : skipped) System.out.println("skipped: " + why);
            } finally {
                for (VerbsDevice d : devices) verbs.close(d, List.of());
            }
            if (devices.isEmpty()) {
                String why = skipped.isEmpty() ? "the library lists no RDMA device" : String.join("; ", skipped);
                System.out.println("devices: none usable: " + why);
                System.out.println("next: " + advice(why));
                return NO_DEVICE;
            }
            if (loopback.equals("none")) return 0;
            return loopbackTransfer(s) ? 0 : LOOPBACK_FAILED;
        }

        private void listSysfs(RdmaSettings s) throws Exception {
            if (!Files.isDirectory(s.sysfsRoot())) {
                System.out.println("sysfs: " + s.sysfsRoot() + " is missing (GID types cannot be read; set gid-index)");
                return;
            }
            try (Stream<Path> devs = Files.list(s.sysfsRoot())) {
                for (Path dev : devs.sorted().toList()) {
                    Path ports = dev.resolve("ports");
                    if (!Files.isDirectory(ports)) continue;
                    try (Stream<Path> ps = Files.list(ports)) {
                        for (Path p : ps.sorted().toList()) {
                            int n = Integer.parseInt(p.getFileName().toString());
                            RdmaAddressing.Port view = RdmaAddressing.readPort(
                                    s.sysfsRoot(), dev.getFileName().toString(), n, 0);
                            System.out.printf(
                                    "%s port %d: link layer %s, state %s, LID %d%n",
                                    view.device(), n, view.linkLayer(), view.state(), view.lid());
                            for (RdmaAddressing.Gid g : view.gids())
                                System.out.printf("  GID %d %s %s %s%n", g.index(), g.text(), g.type(), g.netdev());
                        }
                    }
                }
            }
        }

        private static void memlock() {
            try {
                for (String line : Files.readAllLines(Path.of("/proc/self/limits")))
                    if (line.startsWith("Max locked memory")) {
                        String[] f = line.substring(17).trim().split("\\s+");
                        boolean unlimited = f[0].equals("unlimited");
                        System.out.println("memlock: " + (unlimited ? "unlimited" : f[0] + " bytes")
                                + (unlimited || Long.parseLong(f[0]) >= (1L << 30)
                                        ? ""
                                        : " (too low to register KV memory: ulimit -l unlimited, systemd "
                                                + "LimitMEMLOCK=infinity, or docker --ulimit memlock=-1)"));
                    }
            } catch (Exception e) {
                System.out.println("memlock: unknown (" + e.getMessage() + ")");
            }
        }

        private static String advice(String reason) {
            if (reason.contains("errno 38"))
                return "this kernel has no RDMA support: run on a host with an RDMA NIC and its driver (mlx5_ib, "
                        + "irdma, ...), or load soft RoCE (modprobe rdma_rxe; rdma link add rxe0 type rxe netdev "
                        + "eth0); the transfer engine falls back to shm and tcp meanwhile";
            if (reason.contains("not installed")) return "apt-get install rdma-core ibverbs-providers";
            if (reason.contains("LID")) return "start a subnet manager (opensm) on the fabric";
            if (reason.contains("not active")) return "check the cable and the switch port (ibstat, ip link)";
            return "see docs/rdma.md (bring-up checklist)";
        }

        /** Two engines (two processes, or one) on rdma only, a 1 MiB READ and WRITE verified byte for byte. */
        private boolean loopbackTransfer(RdmaSettings s) throws Exception {
            Path dir = Files.createTempDirectory("mooncakej-doctor");
            String secret = HexFormat.of().formatHex(new SecureRandom().generateSeed(16));
            TransferConfig cfg = config(secret, dir, library, s);
            SegmentMetadata md = new LocalSegmentRegistry(dir);
            Process child = null;
            TransferEngine b = null;
            try (TransferEngine a = new TransferEngine("doctor-a", md, 3L * BYTES, cfg)) {
                if (loopback.equals("process")) {
                    List<String> cmd = new ArrayList<>(List.of(
                            ProcessHandle.current().info().command().orElse("java"),
                            "--enable-native-access=ALL-UNNAMED"));
                    String cp = System.getProperty("java.class.path");
                    if (cp.endsWith(".jar") && !cp.contains(File.pathSeparator))
                        cmd.addAll(List.of("-jar", cp)); // the CLI's own executable jar
                    else cmd.addAll(List.of("-cp", cp, MooncakeCli.class.getName()));
                    cmd.addAll(List.of(
                            "rdma",
                            "peer",
                            dir.toString(),
                            library,
                            s.sysfsRoot().toString(),
                            String.valueOf(s.port()),
                            String.valueOf(s.gidIndex()),
                            String.join(",", s.devices())));
                    ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
                    pb.environment().put("MOONCAKEJ_DOCTOR_SECRET", secret); // never on a command line
                    child = pb.start();
                    String line = new BufferedReader(
                                    new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))
                            .readLine();
                    if (!"ready".equals(line)) {
                        System.out.println("loopback: the peer process did not start (" + line + ")");
                        return false;
                    }
                } else {
                    b = peer(cfg, md);
                }
                String t = a.openSegment("doctor-b");
                if (!t.equals("rdma")) {
                    System.out.println("loopback: negotiated " + t + ", not rdma (" + a.rdmaStatus() + ")");
                    return false;
                }
                MemorySegment local = a.allocate(2L * BYTES, "*");
                byte[] expect = pattern(1);
                TransferBatch r = a.submit(List.of(new TransferRequest(
                                TransferRequest.Opcode.READ, a.offsetOf(local), "doctor-b", 0, BYTES)))
                        .done()
                        .get(30, TimeUnit.SECONDS);
                if (!r.allCompleted()) {
                    System.out.println("loopback: READ failed: " + r.firstProblem());
                    return false;
                }
                if (!Arrays.equals(local.asSlice(0, BYTES).toArray(ValueLayout.JAVA_BYTE), expect)) {
                    System.out.println("loopback: READ returned different bytes");
                    return false;
                }
                byte[] second = pattern(2);
                MemorySegment.copy(MemorySegment.ofArray(second), 0, local, 0, BYTES);
                long back = a.offsetOf(local) + BYTES;
                r = a.submit(List.of(new TransferRequest(
                                TransferRequest.Opcode.WRITE, a.offsetOf(local), "doctor-b", 0, BYTES)))
                        .done()
                        .get(30, TimeUnit.SECONDS);
                TransferBatch rb = r.allCompleted()
                        ? a.submit(List.of(
                                        new TransferRequest(TransferRequest.Opcode.READ, back, "doctor-b", 0, BYTES)))
                                .done()
                                .get(30, TimeUnit.SECONDS)
                        : r;
                if (!rb.allCompleted()
                        || !Arrays.equals(local.asSlice(BYTES, BYTES).toArray(ValueLayout.JAVA_BYTE), second)) {
                    System.out.println("loopback: WRITE then READ did not round-trip: " + rb.firstProblem());
                    return false;
                }
                System.out.println(
                        "loopback: RC connection " + (child != null ? "between two processes" : "in one process")
                                + ", 1 MiB READ and WRITE verified (" + a.rdmaStatus() + ")");
                return true;
            } finally {
                if (b != null) b.close();
                if (child != null) {
                    child.getOutputStream().close();
                    if (!child.waitFor(10, TimeUnit.SECONDS)) child.destroyForcibly();
                }
                md.close();
            }
        }
    }

    static TransferConfig config(String secret, Path dir, String library, RdmaSettings s) {
        return TransferConfig.defaults(secret, dir)
                .withTransports(List.of("rdma", "tcp"))
                .withVerbsLibrary(library)
                .withRetry(0, 1000)
                .withRdma(s);
    }

    static byte[] pattern(long seed) {
        byte[] b = new byte[BYTES];
        new Random(seed).nextBytes(b);
        return b;
    }

    static TransferEngine peer(TransferConfig cfg, SegmentMetadata md) {
        TransferEngine b = new TransferEngine("doctor-b", md, BYTES, cfg);
        MemorySegment buf = b.allocate(BYTES, "*");
        MemorySegment.copy(MemorySegment.ofArray(pattern(1)), 0, buf, 0, BYTES);
        return b;
    }

    /** The loopback's second process: serves a 1 MiB buffer until its stdin closes. */
    @Command(name = "peer", hidden = true, description = "the second process of rdma doctor's loopback")
    static final class Peer implements Callable<Integer> {
        @picocli.CommandLine.Parameters
        List<String> args;

        @Override
        public Integer call() throws Exception {
            String secret = System.getenv("MOONCAKEJ_DOCTOR_SECRET");
            RdmaSettings s = RdmaSettings.fromKeys(
                    "",
                    Map.of(
                            "sysfs-root", args.get(2),
                            "port", args.get(3),
                            "gid-index", args.get(4),
                            "devices", args.size() > 5 ? args.get(5) : ""));
            Path dir = Path.of(args.get(0));
            try (SegmentMetadata md = new LocalSegmentRegistry(dir);
                    TransferEngine b = peer(config(secret, dir, args.get(1), s), md)) {
                System.out.println("ready");
                System.out.flush();
                System.in.transferTo(OutputStream.nullOutputStream());
            }
            return 0;
        }
    }
}
