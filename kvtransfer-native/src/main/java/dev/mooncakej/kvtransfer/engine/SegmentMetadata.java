package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BiConsumer;

/**
 * Where segment descriptors are published and looked up: {@link Embedded} (one process or one host,
 * what {@code ./mooncakej up} uses) or {@link EtcdSegmentMetadata} (a cluster; each process's entries
 * live under its lease, so a dead process's segment disappears).
 */
public interface SegmentMetadata extends AutoCloseable {
    void publish(SegmentDescriptor d);

    Optional<SegmentDescriptor> lookup(String name);

    void remove(String name);

    /**
     * Calls {@code listener(name, descriptor)} on every change after this call, with a null descriptor
     * when the segment went away. Returns a handle that stops the watch.
     */
    AutoCloseable watch(BiConsumer<String, SegmentDescriptor> listener);

    @Override
    default void close() {}

    /** In-process metadata, for one process or tests. */
    final class Embedded implements SegmentMetadata {
        private final ConcurrentHashMap<String, SegmentDescriptor> map = new ConcurrentHashMap<>();
        private final List<BiConsumer<String, SegmentDescriptor>> listeners = new CopyOnWriteArrayList<>();

        @Override
        public void publish(SegmentDescriptor d) {
            map.put(d.name(), d);
            listeners.forEach(l -> l.accept(d.name(), d));
        }

        @Override
        public Optional<SegmentDescriptor> lookup(String name) {
            return Optional.ofNullable(map.get(name));
        }

        @Override
        public void remove(String name) {
            if (map.remove(name) != null) listeners.forEach(l -> l.accept(name, null));
        }

        @Override
        public AutoCloseable watch(BiConsumer<String, SegmentDescriptor> listener) {
            listeners.add(listener);
            return () -> listeners.remove(listener);
        }
    }
}
