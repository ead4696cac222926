package dev.mooncakej.kvtransfer.engine;

import dev.mooncakej.kvtransfer.spi.SegmentDescriptor;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.json.JsonMapper;

/** Segment descriptors as JSON, the form they take in etcd and on the wire between processes. */
public final class DescriptorJson {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private DescriptorJson() {}

    public static String write(SegmentDescriptor d) {
        return JSON.writeValueAsString(d);
    }

    /** Parses a descriptor; a malformed one is an IllegalArgumentException naming where it came from. */
    public static SegmentDescriptor read(String json, String source) {
        try {
            SegmentDescriptor d = JSON.readValue(json, SegmentDescriptor.class);
            if (d.name() == null || d.transports() == null || d.buffers() == null || d.length() <= 0) {
                throw new IllegalArgumentException(
                        "segment descriptor from " + source + " lacks name, transports, buffers or length");
            }
            return d;
        } catch (JacksonException e) {
            throw new IllegalArgumentException(
                    "malformed segment descriptor from " + source + ": " + e.getOriginalMessage(), e);
        }
    }
}
