package dev.mooncakej.kvtransfer.spi;

/**
 * Opens one kind of transport: a new transport is a package with its {@link Transport} and a provider,
 * listed in {@code META-INF/services/dev.mooncakej.kvtransfer.spi.TransportProvider}. The engine finds
 * it by {@link #name()} through {@link Transports}.
 */
public interface TransportProvider {
    /** The name configurations use ({@code kv-transports}). */
    String name();

    /**
     * Opens the transport for one engine; null when it cannot run here (no device, no library), with
     * the reason in {@link TransportContext#status()}. A configuration error throws.
     */
    Transport open(TransportContext context);
}
