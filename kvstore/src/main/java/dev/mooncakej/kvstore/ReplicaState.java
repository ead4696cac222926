package dev.mooncakej.kvstore;

/** A replica's life: allocated but unwritten, being written, readable, or gone. */
public enum ReplicaState {
    UNDEFINED,
    PROCESSING,
    COMPLETE,
    REMOVED
}
