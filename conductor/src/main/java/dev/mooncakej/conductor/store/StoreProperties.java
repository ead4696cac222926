package dev.mooncakej.conductor.store;

import dev.mooncakej.kvstore.AllocationStrategy;
import dev.mooncakej.kvstore.StoreConfig;
import org.springframework.boot.context.properties.ConfigurationProperties;

/** {@code mooncakej.store.*} on the conductor: the store master's settings (defaults after Mooncake's). */
@ConfigurationProperties("mooncakej.store")
public record StoreProperties(
        Long leaseTtlMillis,
        Long softPinTtlMillis,
        Double highWatermark,
        Double evictionRatio,
        Long putTimeoutMillis,
        Long clientLiveTtlMillis,
        String allocation) {
    public StoreProperties {
        StoreConfig d = StoreConfig.defaults();
        leaseTtlMillis = leaseTtlMillis == null ? d.leaseTtlMillis() : leaseTtlMillis;
        softPinTtlMillis = softPinTtlMillis == null ? d.softPinTtlMillis() : softPinTtlMillis;
        highWatermark = highWatermark == null ? d.highWatermark() : highWatermark;
        evictionRatio = evictionRatio == null ? d.evictionRatio() : evictionRatio;
        putTimeoutMillis = putTimeoutMillis == null ? d.putTimeoutMillis() : putTimeoutMillis;
        clientLiveTtlMillis = clientLiveTtlMillis == null ? d.clientLiveTtlMillis() : clientLiveTtlMillis;
        allocation = allocation == null ? d.allocation().keyName() : allocation;
        config(
                leaseTtlMillis,
                softPinTtlMillis,
                highWatermark,
                evictionRatio,
                putTimeoutMillis,
                clientLiveTtlMillis,
                allocation);
    }

    public StoreConfig config() {
        return config(
                leaseTtlMillis,
                softPinTtlMillis,
                highWatermark,
                evictionRatio,
                putTimeoutMillis,
                clientLiveTtlMillis,
                allocation);
    }

    private static StoreConfig config(
            long lease, long softPin, double hw, double ratio, long put, long live, String allocation) {
        return new StoreConfig(lease, softPin, hw, ratio, put, live, AllocationStrategy.parse(allocation), 1);
    }
}
