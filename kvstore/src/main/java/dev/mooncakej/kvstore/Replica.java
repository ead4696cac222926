package dev.mooncakej.kvstore;

/**
 * One copy of a block: the segment that holds it, its byte range in that segment's address space,
 * its tier and state.
 */
public record Replica(String segment, long offset, long length, Tier tier, ReplicaState state) {
    Replica withState(ReplicaState s) {
        return new Replica(segment, offset, length, tier, s);
    }
}
