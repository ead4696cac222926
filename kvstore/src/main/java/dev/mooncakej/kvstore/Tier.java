package dev.mooncakej.kvstore;

/** Where a replica lives: a worker's DRAM (its registered KV memory) or its SSD directory. */
public enum Tier {
    DRAM,
    SSD
}
