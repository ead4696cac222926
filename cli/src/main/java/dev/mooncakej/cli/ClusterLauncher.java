package dev.mooncakej.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The cluster a benchmark or the soak starts: {@code ./mooncakej up} on a port with a model and
 * extra options, the cluster secret ({@link ServeBench#SECRET}) in its environment, returned once it
 * is up; {@link #stop} ends it (the launcher stops every process it started).
 */
final class ClusterLauncher {
    private ClusterLauncher() {}

    static Process start(int port, Path model, String... upOptions) throws Exception {
        List<String> cmd = new ArrayList<>(
                List.of("bash", "mooncakej", "up", "--port", String.valueOf(port), "--model", model.toString()));
        cmd.addAll(List.of(upOptions));
        System.err.println("starting a cluster: ./mooncakej " + String.join(" ", cmd.subList(2, cmd.size())));
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .directory(Machine.projectRoot().toFile())
                .redirectErrorStream(true);
        pb.environment().put("MOONCAKEJ_NO_BUILD", "1");
        pb.environment().put("MOONCAKEJ_CLUSTER_SECRET", ServeBench.SECRET); // internal routes need it
        Process p = pb.start();
        try {
            ServeBench.waitUp(p);
        } catch (Exception e) {
            stop(p);
            throw e;
        }
        return p;
    }

    static void stop(Process p) {
        if (p == null) return;
        p.destroy();
        try {
            if (!p.waitFor(60, TimeUnit.SECONDS)) p.destroyForcibly();
        } catch (InterruptedException ignored) {
            Thread.currentThread().interrupt();
        }
    }
}
