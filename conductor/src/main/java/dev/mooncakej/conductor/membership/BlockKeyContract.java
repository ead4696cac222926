package dev.mooncakej.conductor.membership;

import dev.mooncakej.kvcache.BlockKeys;
import dev.mooncakej.kvcache.wire.WorkerMessages.WorkerProfile;

/**
 * The block-key contract a worker must share with the conductor before it is scheduled: the same
 * key derivation (hash version), block size and key seed (from the same model file). A worker that
 * differs in any of them holds blocks under keys the conductor never computes, so every prefix hit
 * it should give is lost silently; it is refused, by name.
 */
final class BlockKeyContract {
    private BlockKeyContract() {}

    /** Why the worker's profile breaks the contract, or null when it keeps it. */
    static String mismatch(WorkerProfile p, String role, BlockKeys conductor, String conductorModel) {
        if (p.role() != null && !p.role().equals(role))
            return "it is a " + p.role() + " worker, listed as a " + role + " worker";
        if (!BlockKeys.VERSION.equals(p.hashVersion()))
            return "its block keys are hashed as '" + p.hashVersion() + "', the conductor's as '" + BlockKeys.VERSION
                    + "' (run the same Mooncake-J version on every process)";
        if (p.blockTokens() != conductor.blockTokens())
            return "block size " + p.blockTokens() + " tokens, the conductor's is " + conductor.blockTokens()
                    + " (mooncakej.conductor.block-tokens and the worker's block-tokens must be equal)";
        if (p.keySeed() != conductor.seed())
            return "block-key seed " + Long.toHexString(p.keySeed()) + " from model '" + p.model()
                    + "', the conductor's is " + Long.toHexString(conductor.seed()) + " from model '" + conductorModel
                    + "' (serve the same model file everywhere)";
        return null;
    }
}
