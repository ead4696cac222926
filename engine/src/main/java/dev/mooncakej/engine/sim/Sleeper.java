package dev.mooncakej.engine.sim;

/** How the simulated engine lets modelled time pass (real sleeping, or recorded in tests). */
@FunctionalInterface
public interface Sleeper {
    Sleeper REAL = nanos -> {
        long deadline = System.nanoTime() + nanos;
        long left;
        while ((left = deadline - System.nanoTime()) > 0) {
            if (left > 200_000) java.util.concurrent.locks.LockSupport.parkNanos(left - 100_000);
            else Thread.onSpinWait();
        }
    };

    void sleep(long nanos);
}
