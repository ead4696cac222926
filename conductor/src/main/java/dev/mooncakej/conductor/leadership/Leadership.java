package dev.mooncakej.conductor.leadership;

import org.springframework.stereotype.Component;

/**
 * Whether this conductor leads (HA), and the epoch of its leadership: a standby answers 503 naming
 * the reason until it is elected. Single-host mode: always the leader, epoch 1. The epoch (the etcd
 * revision at which this conductor was elected; every later leader's is larger) travels on every
 * answer of the internal plane ({@link LeaderEpochFilter}), so a worker that has heard a newer leader
 * refuses what an older one says.
 */
@Component
public class Leadership {
    private volatile boolean leader = true;
    private volatile String standbyReason;
    private volatile long epoch = 1;

    public void set(boolean leader, String standbyReason, long epoch) {
        this.standbyReason = standbyReason;
        this.epoch = epoch;
        this.leader = leader;
    }

    public boolean leader() {
        return leader;
    }

    /** The epoch of this conductor's leadership; 0 on a standby. */
    public long epoch() {
        return leader ? epoch : 0;
    }

    public String standbyReason() {
        return standbyReason;
    }
}
