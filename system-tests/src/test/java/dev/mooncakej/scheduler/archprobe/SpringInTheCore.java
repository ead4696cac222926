package dev.mooncakej.scheduler.archprobe;

import org.springframework.archprobe.SpringBean;

/** Architecture probe: a core class that uses Spring (two rules must fail on it). */
public final class SpringInTheCore {
    public int read(SpringBean b) {
        return b.value;
    }
}
