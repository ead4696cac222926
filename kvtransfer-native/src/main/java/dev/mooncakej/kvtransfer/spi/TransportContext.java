package dev.mooncakej.kvtransfer.spi;

import dev.mooncakej.kvtransfer.PeerAuth;
import java.util.function.BiFunction;

/**
 * What a transport is opened with.
 *
 * @param engineName the engine's segment name (what its handshakes prove)
 * @param config     the engine's settings
 * @param auth       the cluster secret's challenge, for transports that open their own connections
 * @param handshake  sends a handshake request to a named peer over the engine's control channel and
 *                   returns the answer (to that peer's {@link Transport#acceptHandshake})
 * @param status     where the transport says how it opened, or why it could not
 */
public record TransportContext(
        String engineName,
        TransferConfig config,
        PeerAuth auth,
        BiFunction<String, byte[], byte[]> handshake,
        StringBuilder status) {}
