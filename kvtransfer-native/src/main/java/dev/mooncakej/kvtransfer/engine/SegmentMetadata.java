package dev.mooncakej.kvtransfer.engine;

import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/** Where segment descriptors are published and looked up (embedded here; etcd comes next). */
public interface SegmentMetadata {
    void publish(SegmentDescriptor d);

    Optional<SegmentDescriptor> lookup(String name);

    void remove(String name);

    /** In-process metadata, for one host or tests. */
    final class Embedded implements SegmentMetadata {
        private final ConcurrentHashMap<String, SegmentDescriptor> map = new ConcurrentHashMap<>();

        @Override public void publish(SegmentDescriptor d) { map.put(d.name(), d); }
        @Override public Optional<SegmentDescriptor> lookup(String name) { return Optional.ofNullable(map.get(name)); }
        @Override public void remove(String name) { map.remove(name); }
    }
}
