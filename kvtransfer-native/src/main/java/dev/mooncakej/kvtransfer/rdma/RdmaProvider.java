package dev.mooncakej.kvtransfer.rdma;

import dev.mooncakej.kvtransfer.spi.Transport;
import dev.mooncakej.kvtransfer.spi.TransportContext;
import dev.mooncakej.kvtransfer.spi.TransportProvider;

/**
 * {@code rdma}: one-sided READ and WRITE through libibverbs (Panama FFM bindings in {@code
 * kvtransfer.verbs}); opens nothing (and says why) on a host without a usable device.
 */
public final class RdmaProvider implements TransportProvider {
    @Override
    public String name() {
        return "rdma";
    }

    @Override
    public Transport open(TransportContext context) {
        return RdmaTransport.open(context.config(), context.engineName(), context.handshake(), context.status());
    }
}
