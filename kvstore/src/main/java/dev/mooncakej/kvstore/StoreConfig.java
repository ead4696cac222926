package dev.mooncakej.kvstore;

/**
 * The store master's settings ({@code mooncakej.store.*}), validated once; defaults after Mooncake's
 * {@code types.h} (REFERENCE section 6).
 *
 * @param leaseTtlMillis       a read lease (granted by get and exists) blocks removal and eviction this long
 * @param softPinTtlMillis     how long a soft pin holds (30 min)
 * @param highWatermark        eviction starts when a tier's used fraction passes this (0.90)
 * @param evictionRatio        the fraction of a tier an eviction round frees at least (0.05)
 * @param putTimeoutMillis     a put started and never ended is reclaimed after this (30 s)
 * @param clientLiveTtlMillis  a client silent this long has its segments unmounted and replicas dropped (10 s)
 */
public record StoreConfig(
        long leaseTtlMillis,
        long softPinTtlMillis,
        double highWatermark,
        double evictionRatio,
        long putTimeoutMillis,
        long clientLiveTtlMillis,
        AllocationStrategy allocation,
        long seed) {
    public StoreConfig {
        require(leaseTtlMillis >= 1, "lease-ttl-millis", leaseTtlMillis, "a positive number of milliseconds");
        require(
                softPinTtlMillis >= 1 && softPinTtlMillis <= 24L * 3600 * 1000,
                "soft-pin-ttl-millis",
                softPinTtlMillis,
                "1..86400000 (at most 24 h)");
        require(highWatermark > 0 && highWatermark <= 1, "high-watermark", highWatermark, "a fraction in (0, 1]");
        require(evictionRatio > 0 && evictionRatio < 1, "eviction-ratio", evictionRatio, "a fraction in (0, 1)");
        require(putTimeoutMillis >= 1, "put-timeout-millis", putTimeoutMillis, "a positive number of milliseconds");
        require(
                clientLiveTtlMillis >= 1,
                "client-live-ttl-millis",
                clientLiveTtlMillis,
                "a positive number of milliseconds");
        if (allocation == null)
            throw new IllegalArgumentException(
                    "mooncakej.store.allocation is missing: expected random or free-ratio-first");
    }

    public static StoreConfig defaults() {
        return new StoreConfig(10_000, 30 * 60_000, 0.90, 0.05, 30_000, 10_000, AllocationStrategy.RANDOM, 1);
    }

    public StoreConfig withLeaseTtl(long ms) {
        return new StoreConfig(
                ms,
                softPinTtlMillis,
                highWatermark,
                evictionRatio,
                putTimeoutMillis,
                clientLiveTtlMillis,
                allocation,
                seed);
    }

    public StoreConfig withWatermark(double hw, double ratio) {
        return new StoreConfig(
                leaseTtlMillis, softPinTtlMillis, hw, ratio, putTimeoutMillis, clientLiveTtlMillis, allocation, seed);
    }

    public StoreConfig withAllocation(AllocationStrategy a) {
        return new StoreConfig(
                leaseTtlMillis,
                softPinTtlMillis,
                highWatermark,
                evictionRatio,
                putTimeoutMillis,
                clientLiveTtlMillis,
                a,
                seed);
    }

    private static void require(boolean ok, String key, Object value, String expected) {
        if (!ok) throw new IllegalArgumentException("mooncakej.store." + key + "=" + value + ": expected " + expected);
    }
}
