package dev.mooncakej.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** What a benchmark prints about where it ran. */
final class Machine {
    private Machine() {}

    static String describe() {
        String cpu = "unknown cpu";
        try {
            cpu = Files.readAllLines(Path.of("/proc/cpuinfo")).stream()
                    .filter(l -> l.startsWith("model name"))
                    .findFirst()
                    .map(l -> l.substring(l.indexOf(':') + 1).trim())
                    .orElse(cpu);
        } catch (IOException ignored) {
            // not Linux: keep the placeholder
        }
        return cpu + ", " + Runtime.getRuntime().availableProcessors() + " cores, "
                + (Runtime.getRuntime().maxMemory() >> 20) + " MiB heap max, JDK " + System.getProperty("java.version")
                + " (" + System.getProperty("java.vm.name") + ")";
    }

    /** VmHWM of this process (Linux), or -1. */
    static long peakRssBytes() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (l.startsWith("VmHWM:")) return Long.parseLong(l.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (IOException | NumberFormatException ignored) {
            // not Linux
        }
        return -1;
    }

    static Path projectRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("mooncakej"))) p = p.getParent();
        if (p == null)
            throw new IllegalStateException(
                    "run this from inside the Mooncake-J checkout (the folder holding ./mooncakej)");
        return p;
    }
}
