package dev.mooncakej.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.verbs.Verbs;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code ./mooncakej rdma doctor}: here (no RDMA in this kernel) it prints why and exits with
 * {@link RdmaCommand#NO_DEVICE}; against the fake verbs provider of kvtransfer-native's tests (a mock
 * of two InfiniBand devices; no sysfs, so GIDs come from the device) it lists them with the chosen GID
 * and passes an in-process loopback, and its two-process loopback fails with the reason (each process
 * has its own fake devices, so the peer's queue pair does not exist on this side: the doctor says so).
 */
@Timeout(value = 2, unit = TimeUnit.MINUTES)
class RdmaDoctorTest {
    @TempDir
    Path dir;

    private record Run(int exit, String out) {}

    private static Run doctor(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        int exit;
        try {
            String[] all = new String[args.length + 2];
            all[0] = "rdma";
            all[1] = "doctor";
            System.arraycopy(args, 0, all, 2, args.length);
            exit = new CommandLine(new MooncakeCli()).execute(all);
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        System.out.print(out);
        return new Run(exit, out);
    }

    private Path fakeProvider() throws Exception {
        Path src = Path.of("..", "kvtransfer-native", "src", "test", "resources", "fake-verbs", "fake_libibverbs.c");
        assertThat(src).exists();
        Path lib = dir.resolve("libfakeibverbs.so");
        Process cc = new ProcessBuilder(
                        "gcc", "-shared", "-fPIC", "-O1", "-o", lib.toString(), src.toString(), "-lpthread")
                .redirectErrorStream(true)
                .start();
        String out = new String(cc.getInputStream().readAllBytes());
        assertThat(cc.waitFor()).as("gcc: " + out).isZero();
        return lib;
    }

    @Test
    void onThisMachineItSaysWhyThereIsNoDeviceAndExitsNonZero() {
        Verbs.Probe probe = Verbs.probe();
        Run r = doctor("--loopback", "none");
        assertThat(r.out()).contains("memlock:");
        if (probe.available()) { // a machine with RDMA: the devices are listed instead
            assertThat(r.out()).contains("chosen GID");
            return;
        }
        assertThat(r.exit()).isEqualTo(RdmaCommand.NO_DEVICE);
        assertThat(r.out()).contains("devices: none: " + probe.reason()).contains("next: ");
        System.out.println("rdma doctor here: " + probe.reason());
    }

    @Test
    void withTheFakeProviderItListsDevicesAndPassesAnInProcessLoopback() throws Exception {
        Path lib = fakeProvider();
        Run r = doctor(
                "--verbs-library",
                lib.toString(),
                "--sysfs-root",
                dir.resolve("no-sysfs").toString(),
                "--devices",
                "fakeib0,fakeib1",
                "--loopback",
                "thread");
        assertThat(r.exit()).as(r.out()).isZero();
        assertThat(r.out())
                .contains("fakeib0 port 1: INFINIBAND, active, MTU 4096, LID 1")
                .contains("fakeib1 port 1: INFINIBAND, active, MTU 2048, LID 2")
                .contains("chosen GID 0 fe80:0000:0000:0000:0000:0000:0000:0001")
                .contains("sysfs: ")
                .contains("loopback: RC connection in one process, 1 MiB READ and WRITE verified");
        Files.createDirectories(dir.resolve("empty-sysfs"));
        Run two = doctor(
                "--verbs-library",
                lib.toString(),
                "--sysfs-root",
                dir.resolve("empty-sysfs").toString(),
                "--devices",
                "fakeib0",
                "--loopback",
                "process");
        assertThat(two.exit()).as(two.out()).isEqualTo(RdmaCommand.LOOPBACK_FAILED);
        assertThat(two.out()).contains("loopback: READ failed").contains("rdma handshake");
        Run bad = doctor("--verbs-library", lib.toString(), "--devices", "mlx5_9", "--loopback", "none");
        assertThat(bad.exit()).isNotZero();
    }
}
