package dev.mooncakej.conductor.leadership;

import org.springframework.stereotype.Component;

/**
 * Whether this conductor leads (HA): a standby answers 503 naming the reason until it is elected.
 * Single-host mode: always the leader.
 */
@Component
public class Leadership {
    private volatile boolean leader = true;
    private volatile String standbyReason;

    public void set(boolean leader, String standbyReason) {
        this.standbyReason = standbyReason;
        this.leader = leader;
    }

    public boolean leader() {
        return leader;
    }

    public String standbyReason() {
        return standbyReason;
    }
}
