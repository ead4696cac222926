package dev.mooncakej.kvtransfer;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Arrays;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The mutual handshake of every transfer connection, before any frame. The server (the segment's
 * owner) sends a 32-byte nonce Ns and nothing else; the client sends its nonce Nc, its own segment
 * name, the name of the segment it means to reach, and
 * {@code tagC = HMAC-SHA256(secret, "mooncakej-transfer-v2|client" | Ns | Nc | client | target)}.
 * The server closes the connection, having sent nothing but Ns, unless the target is itself and
 * tagC is right; then it answers {@code tagS}, the same HMAC with "server", which the client checks
 * before it sends or accepts a single frame. Both nonces, both roles and both names are bound, so
 * neither tag answers any other connection: a fake server learns nothing it could replay to a real
 * one, and a fake client gets nothing. Tags are compared in constant time.
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

    /**
     * Server side: the proven client's segment name, or null (the caller closes the connection; it
     * has been sent nothing but a nonce).
     */
    public String accept(SocketChannel ch, String self) throws IOException {
        byte[] ns = new byte[CHALLENGE_BYTES];
        RANDOM.nextBytes(ns);
        writeFully(ch, ByteBuffer.wrap(ns));
        ByteBuffer head = ByteBuffer.allocate(CHALLENGE_BYTES + 1);
        readFully(ch, head);
        byte[] nc = Arrays.copyOf(head.array(), CHALLENGE_BYTES);
        String client = readName(ch, head.get(CHALLENGE_BYTES));
        ByteBuffer tlen = ByteBuffer.allocate(1);
        readFully(ch, tlen);
        String target = readName(ch, tlen.get(0));
        ByteBuffer tag = ByteBuffer.allocate(CHALLENGE_BYTES);
        readFully(ch, tag);
        if (client == null || target == null) return null;
        boolean ok = MessageDigest.isEqual(tag.array(), tag("client", ns, nc, client, target));
        if (!ok || !target.equals(self)) return null;
        writeFully(ch, ByteBuffer.wrap(tag("server", ns, nc, client, target)));
        return client;
    }

    /** Client side: proves itself to {@code target} and checks that the server proved it too. */
    public void connect(SocketChannel ch, String self, String target) throws IOException {
        ByteBuffer ns = ByteBuffer.allocate(CHALLENGE_BYTES);
        readFully(ch, ns);
        byte[] nc = new byte[CHALLENGE_BYTES];
        RANDOM.nextBytes(nc);
        byte[] c = self.getBytes(StandardCharsets.UTF_8), t = target.getBytes(StandardCharsets.UTF_8);
        if (c.length > 255 || t.length > 255) throw new IOException("segment name too long for the handshake");
        ByteBuffer out = ByteBuffer.allocate(CHALLENGE_BYTES + 2 + c.length + t.length + CHALLENGE_BYTES);
        out.put(nc).put((byte) c.length).put(c).put((byte) t.length).put(t);
        out.put(tag("client", ns.array(), nc, self, target)).flip();
        writeFully(ch, out);
        ByteBuffer answer = ByteBuffer.allocate(CHALLENGE_BYTES);
        try {
            readFully(ch, answer);
        } catch (EOFException e) {
            throw new IOException("the transfer peer '" + target + "' refused the handshake (a different cluster "
                    + "secret, or it is not that segment)");
        }
        if (!MessageDigest.isEqual(answer.array(), tag("server", ns.array(), nc, self, target)))
            throw new IOException("the transfer peer claiming to be '" + target
                    + "' did not prove the cluster secret: connection closed, nothing sent");
    }

    private static String readName(SocketChannel ch, byte len) throws IOException {
        int n = Byte.toUnsignedInt(len);
        if (n < 1 || n > 64) return null;
        ByteBuffer b = ByteBuffer.allocate(n);
        readFully(ch, b);
        String s = new String(b.array(), StandardCharsets.UTF_8);
        return s.matches("[A-Za-z0-9._-]{1,64}") ? s : null;
    }

    private byte[] tag(String role, byte[] ns, byte[] nc, String client, String target) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret, "HmacSHA256"));
            mac.update(("mooncakej-transfer-v2|" + role).getBytes(StandardCharsets.UTF_8));
            mac.update(ns);
            mac.update(nc);
            byte[] c = client.getBytes(StandardCharsets.UTF_8), t = target.getBytes(StandardCharsets.UTF_8);
            mac.update((byte) c.length);
            mac.update(c);
            mac.update((byte) t.length);
            mac.update(t);
            return mac.doFinal();
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
