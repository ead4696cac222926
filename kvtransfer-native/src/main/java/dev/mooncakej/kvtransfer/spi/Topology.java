package dev.mooncakej.kvtransfer.spi;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The topology matrix, as in Mooncake: for each memory location ({@code cpu:N}), the devices to prefer
 * (same NUMA node) and the secondary ones (the rest). A slice's device is, on its first attempt, a
 * random preferred device, and on retry k the (k-1)-th device walking preferred then secondary, so
 * retries move to another path and one request's slices spread over all preferred devices.
 */
public final class Topology {
    private final Map<String, List<List<String>>> matrix;

    public Topology(Map<String, List<List<String>>> matrix) {
        this.matrix = Map.copyOf(matrix);
    }

    /** Builds the matrix from devices and their NUMA nodes (-1: unknown, preferred everywhere). */
    public static Topology of(Map<String, Integer> deviceNuma, int numaNodes) {
        Map<String, List<List<String>>> m = new LinkedHashMap<>();
        for (int node = 0; node < Math.max(1, numaNodes); node++) {
            List<String> pref = new ArrayList<>(), sec = new ArrayList<>();
            for (var e : deviceNuma.entrySet()) {
                if (e.getValue() == node || e.getValue() < 0) pref.add(e.getKey());
                else sec.add(e.getKey());
            }
            if (pref.isEmpty()) { // no device on this node: everything is equally far
                pref.addAll(sec);
                sec.clear();
            }
            m.put("cpu:" + node, List.of(List.copyOf(pref), List.copyOf(sec)));
        }
        return new Topology(m);
    }

    /** This machine's NUMA nodes, from sysfs (1 when unknown). */
    public static int numaNodes() {
        try (var s = Files.list(Path.of("/sys/devices/system/node"))) {
            return (int) Math.max(
                    1,
                    s.filter(p -> p.getFileName().toString().matches("node\\d+"))
                            .count());
        } catch (IOException e) {
            return 1;
        }
    }

    public Map<String, List<List<String>>> matrix() {
        return matrix;
    }

    /** The device for a slice of memory at {@code location} on its {@code attempt}-th try, or null with no device. */
    public String select(String location, int attempt) {
        List<List<String>> entry = matrix.get(location);
        if (entry == null)
            entry = matrix.isEmpty() ? null : matrix.values().iterator().next(); // "*" or unknown: any
        if (entry == null) return null;
        List<String> pref = entry.get(0), sec = entry.get(1);
        int all = pref.size() + sec.size();
        if (all == 0) return null;
        if (attempt == 0 && !pref.isEmpty())
            return pref.get(ThreadLocalRandom.current().nextInt(pref.size()));
        int k = Math.floorMod(attempt - 1, all);
        return k < pref.size() ? pref.get(k) : sec.get(k - pref.size());
    }
}
