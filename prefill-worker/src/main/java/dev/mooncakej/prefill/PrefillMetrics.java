package dev.mooncakej.prefill;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;

/** The prefill worker's per-request meters. */
public final class PrefillMetrics {
    final Timer prefillTime;
    final Timer kvTime;
    final Counter kvBytes;
    final DistributionSummary cachedTokens;
    final Counter fetchedTokens;
    final Timer fetchTime;
    final Counter ssdTokens;

    public PrefillMetrics(MeterRegistry meters) {
        this.prefillTime = Timer.builder("mooncakej.prefill.time")
                .description("prefill time per request on the engine (compute and prefix fetch, not the wait behind"
                        + " other prefills): its sum over time is the worker's busy time")
                .publishPercentileHistogram()
                .register(meters);
        this.kvTime = Timer.builder("mooncakej.kv.transfer.time")
                .description("time from the first KV layer queued to the commit acknowledged")
                .publishPercentileHistogram()
                .register(meters);
        this.kvBytes = Counter.builder("mooncakej.kv.transfer.bytes")
                .description("KV bytes sent to decode workers")
                .register(meters);
        this.cachedTokens = DistributionSummary.builder("mooncakej.prefill.cached.tokens")
                .description("prompt tokens reused from the prefix cache")
                .register(meters);
        this.fetchedTokens = Counter.builder("mooncakej.prefill.fetched.tokens")
                .description("prompt tokens whose KV was fetched from another worker through the pool")
                .register(meters);
        this.ssdTokens = Counter.builder("mooncakej.prefill.ssd.tokens")
                .description("prompt tokens whose KV was read back from this worker's SSD tier")
                .register(meters);
        this.fetchTime = Timer.builder("mooncakej.prefill.fetch.time")
                .description("time to fetch a prefix from the pool (replica lookup and reads)")
                .publishPercentileHistogram()
                .register(meters);
    }
}
