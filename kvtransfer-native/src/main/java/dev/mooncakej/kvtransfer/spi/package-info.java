/**
 * The transport SPI of the transfer engine: {@link dev.mooncakej.kvtransfer.spi.Transport} (what a
 * transport does with slices), {@link dev.mooncakej.kvtransfer.spi.TransportProvider} and the registry
 * {@link dev.mooncakej.kvtransfer.spi.Transports} the engine looks transports up in by name, and what
 * both sides share: the segment descriptor, the engine's settings, the topology, the endpoint pool.
 * A new transport is a package with a provider plus one line in {@code
 * META-INF/services/dev.mooncakej.kvtransfer.spi.TransportProvider}.
 */
package dev.mooncakej.kvtransfer.spi;
