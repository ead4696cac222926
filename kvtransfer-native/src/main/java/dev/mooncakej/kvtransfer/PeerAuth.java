package dev.mooncakej.kvtransfer;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The challenge a KV receiver puts to every connection before any frame: it sends 32 random bytes,
 * the sender answers HMAC-SHA256(cluster secret, challenge), and the receiver compares in constant
 * time. A peer without the secret is closed before it can write anything.
 */
public final class PeerAuth {
    public static final int CHALLENGE_BYTES = 32;
    public static final int MIN_SECRET_BYTES = 16;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final byte[] secret;

    public PeerAuth(String secret) {
        if (secret == null || secret.getBytes(StandardCharsets.UTF_8).length < MIN_SECRET_BYTES) {
            throw new IllegalArgumentException("the KV transfer secret must have at least " + MIN_SECRET_BYTES
                    + " bytes (mooncakej.*.kv-secret; ./mooncakej up makes a random one)");
        }
        this.secret = secret.getBytes(StandardCharsets.UTF_8);
    }

    /** Receiver side: challenge the peer; true when it proved it holds the secret. */
    public boolean challenge(SocketChannel ch) throws IOException {
        byte[] nonce = new byte[CHALLENGE_BYTES];
        RANDOM.nextBytes(nonce);
        writeFully(ch, ByteBuffer.wrap(nonce));
        ByteBuffer answer = ByteBuffer.allocate(CHALLENGE_BYTES);
        readFully(ch, answer);
        return MessageDigest.isEqual(answer.array(), hmac(nonce));
    }

    /** Sender side: answer the receiver's challenge. */
    public void answer(SocketChannel ch) throws IOException {
        ByteBuffer nonce = ByteBuffer.allocate(CHALLENGE_BYTES);
        readFully(ch, nonce);
        writeFully(ch, ByteBuffer.wrap(hmac(nonce.array())));
    }

    private byte[] hmac(byte[] nonce) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            return mac.doFinal(nonce);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available in this JDK", e);
        }
    }

    private static void readFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) throw new EOFException("connection closed during the KV transfer handshake");
        }
    }

    private static void writeFully(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }
}
