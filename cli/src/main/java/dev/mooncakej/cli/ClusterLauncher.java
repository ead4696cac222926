package dev.mooncakej.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The cluster a benchmark or the soak starts: {@code ./mooncakej up} on a port with a model and
 * extra options, the cluster secret ({@link ServeBench#SECRET}) in its environment, returned once it
 * is up; {@link #stop} ends it (the launcher stops every process it started).
 */
final class ClusterLauncher {
    private ClusterLauncher() {}

    static Process start(int port, Path model, String... upOptions) throws Exception {
        return start(port, model, Map.of(), upOptions);
    }

    /** As above, with {@code env} added to the cluster's environment (settings as environment variables). */
    static Process start(int port, Path model, Map<String, String> env, String... upOptions) throws Exception {
        List<String> cmd = new ArrayList<>(
                List.of("bash", "mooncakej", "up", "--port", String.valueOf(port), "--model", model.toString()));
        cmd.addAll(List.of(upOptions));
        System.err.println("starting a cluster: ./mooncakej " + String.join(" ", cmd.subList(2, cmd.size())));
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .directory(Machine.projectRoot().toFile())
                .redirectErrorStream(true);
        pb.environment().put("MOONCAKEJ_NO_BUILD", "1");
        pb.environment().put("MOONCAKEJ_CLUSTER_SECRET", ServeBench.SECRET); // internal routes need it
        pb.environment().putAll(env);
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

    /** The worker process (its JVM) of a started cluster serving HTTP on {@code httpPort}. */
    static ProcessHandle worker(int httpPort) {
        return ProcessHandle.allProcesses()
                .filter(h -> h.info().commandLine().orElse("").contains("--server.port=" + httpPort + " "))
                .findFirst()
                .orElseThrow(() -> new IllegalStateException("no worker serves port " + httpPort));
    }
}
