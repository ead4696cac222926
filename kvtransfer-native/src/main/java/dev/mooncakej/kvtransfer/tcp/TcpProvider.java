package dev.mooncakej.kvtransfer.tcp;

import dev.mooncakej.kvtransfer.spi.Transport;
import dev.mooncakej.kvtransfer.spi.TransportContext;
import dev.mooncakej.kvtransfer.spi.TransportProvider;

/**
 * {@code tcp}: slices striped over authenticated connections to the peer's {@link TransferServer}, the
 * path every pair of hosts has (the engine's control channel runs over the same server).
 */
public final class TcpProvider implements TransportProvider {
    @Override
    public String name() {
        return "tcp";
    }

    @Override
    public Transport open(TransportContext context) {
        context.status().append("listening with the control channel");
        return new TcpTransport(context.engineName(), context.config(), context.auth());
    }
}
