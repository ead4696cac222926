package dev.mooncakej.kvcache;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import net.openhft.hashing.LongHashFunction;

/**
 * Block keys: chained prefix hashes over full blocks of tokens, so equal keys mean equal prefixes
 * (docs/hashing.md has the specification and test vectors).
 *
 * <pre>
 * seed   = XXH3-64( UTF-8("mooncakej-block-v1|" + modelId + "|" + blockTokens) , seed 0 )
 * key[0] = XXH3-64( le32(t[0]) .. le32(t[B-1]) , seed )
 * key[i] = XXH3-64( le64(key[i-1]) || le32(t[iB]) .. le32(t[iB+B-1]) , seed )
 * </pre>
 * Only full blocks get keys: a prompt of n tokens has floor(n / B) keys.
 */
public final class BlockKeys {
    private final long seed;
    private final int blockTokens;
    private final LongHashFunction hash;

    /** The version of the key derivation: part of the seed, and of the contract a worker states at admission. */
    public static final String VERSION = "mooncakej-block-v1";

    public BlockKeys(String modelId, int blockTokens) {
        this(
                LongHashFunction.xx3()
                        .hashBytes((VERSION + "|" + modelId + "|" + blockTokens).getBytes(StandardCharsets.UTF_8)),
                blockTokens);
    }

    /** Keys with a known seed (a worker continuing the keys the conductor computed). */
    public BlockKeys(long seed, int blockTokens) {
        if (blockTokens < 1) throw new IllegalArgumentException("block tokens must be >= 1, got " + blockTokens);
        this.blockTokens = blockTokens;
        this.seed = seed;
        this.hash = LongHashFunction.xx3(seed);
    }

    /**
     * The keys of one tenant: the same chain under a seed derived from this one and {@code salt}
     * (docs/hashing.md), so equal prompts of two tenants share no key.
     */
    public BlockKeys salted(String salt) {
        long s = LongHashFunction.xx3(seed).hashBytes(("mooncakej-salt-v1|" + salt).getBytes(StandardCharsets.UTF_8));
        return new BlockKeys(s, blockTokens);
    }

    public long seed() {
        return seed;
    }

    public int blockTokens() {
        return blockTokens;
    }

    /** Keys of the full blocks of {@code tokens}. */
    public long[] keys(int[] tokens) {
        return extend(new long[0], tokens, tokens.length);
    }

    /**
     * The keys of a longer sequence: {@code prefix} are the keys of its first {@code prefix.length}
     * full blocks, {@code after} its tokens from there on (the first {@code afterLength} of them);
     * returns {@code prefix} followed by the keys of the full blocks {@code after} completes.
     */
    public long[] extend(long[] prefix, int[] after, int afterLength) {
        int n = afterLength / blockTokens;
        long[] keys = Arrays.copyOf(prefix, prefix.length + n);
        ByteBuffer buf = ByteBuffer.allocate(8 + 4 * blockTokens).order(ByteOrder.LITTLE_ENDIAN);
        for (int j = 0; j < n; j++) {
            int b = prefix.length + j;
            buf.clear();
            if (b > 0) buf.putLong(keys[b - 1]);
            for (int t = 0; t < blockTokens; t++) buf.putInt(after[j * blockTokens + t]);
            keys[b] = hash.hashBytes(buf.array(), 0, buf.position());
        }
        return keys;
    }
}
