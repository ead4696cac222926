package dev.mooncakej.kvtransfer.shm;

import dev.mooncakej.kvtransfer.spi.Transport;
import dev.mooncakej.kvtransfer.spi.TransportContext;
import dev.mooncakej.kvtransfer.spi.TransportProvider;

/** {@code shm}: a peer on the same host is reached by mapping its segment file, so a transfer is a memory copy. */
public final class ShmProvider implements TransportProvider {
    @Override
    public String name() {
        return "shm";
    }

    @Override
    public Transport open(TransportContext context) {
        int threads = context.config().copyThreads();
        context.status().append(threads).append(" copy threads");
        return new ShmTransport(threads, context.config().shmDir());
    }
}
