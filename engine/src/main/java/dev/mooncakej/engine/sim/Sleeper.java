package dev.mooncakej.engine.sim;

import java.util.concurrent.locks.LockSupport;

/** How the simulated engine lets modelled time pass (real sleeping, or recorded in tests). */
@FunctionalInterface
public interface Sleeper {
    Sleeper REAL = nanos -> {
        long deadline = System.nanoTime() + nanos;
        long left;
        while ((left = deadline - System.nanoTime()) > 0) {
            if (left > 200_000) LockSupport.parkNanos(left - 100_000);
            else Thread.onSpinWait();
        }
    };

    void sleep(long nanos);
}
