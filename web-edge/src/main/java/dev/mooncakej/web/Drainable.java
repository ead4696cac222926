package dev.mooncakej.web;

import java.time.Duration;

/**
 * A worker that drains before it exits (its lifecycle's stop leaves scheduling, then finishes or hands
 * back what it holds within {@link #drainBudget()}): with such a bean, the web edge serves {@code
 * POST /internal/drain} ({@link DrainController}), which starts that stop as SIGTERM does.
 */
public interface Drainable {
    /** How long the drain may take before the process exits anyway. */
    Duration drainBudget();
}
