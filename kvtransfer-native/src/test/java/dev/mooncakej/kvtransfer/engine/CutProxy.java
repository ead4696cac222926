package dev.mooncakej.kvtransfer.engine;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP proxy for fault tests (this kernel has no netem): forwards every connection to the target,
 * and cuts the first one (closes both sides) once it has forwarded {@code cutAfter} bytes towards the
 * target, so a batch loses that connection mid-flight ({@code Long.MAX_VALUE}: never). While {@link
 * #pause paused} it holds every byte in both directions without closing anything: a partition, as a
 * network that drops packets makes one.
 */
public final class CutProxy implements AutoCloseable {
    private final ServerSocket server;
    private final AtomicInteger accepted = new AtomicInteger();
    final AtomicLong cuts = new AtomicLong();

    private volatile boolean paused;

    public CutProxy(int targetPort, long cutAfter) throws IOException {
        server = new ServerSocket();
        server.bind(new InetSocketAddress("127.0.0.1", 0));
        Thread.ofPlatform().daemon().start(() -> {
            while (!server.isClosed()) {
                try {
                    Socket in = server.accept();
                    Socket out = new Socket("127.0.0.1", targetPort);
                    boolean cutThis = accepted.getAndIncrement() == 0;
                    Thread.ofPlatform().daemon().start(() -> pump(in, out, cutThis ? cutAfter : Long.MAX_VALUE));
                    Thread.ofPlatform().daemon().start(() -> pump(out, in, Long.MAX_VALUE));
                } catch (IOException e) {
                    return;
                }
            }
        });
    }

    public int port() {
        return server.getLocalPort();
    }

    /** Holds (true) or passes again (false) every byte of every connection, in both directions. */
    public void pause(boolean on) {
        paused = on;
    }

    int connections() {
        return accepted.get();
    }

    private void pump(Socket from, Socket to, long limit) {
        byte[] buf = new byte[64 * 1024];
        long moved = 0;
        try (InputStream in = from.getInputStream();
                OutputStream out = to.getOutputStream()) {
            int n;
            while ((n = in.read(buf)) > 0) {
                while (paused && !server.isClosed()) Thread.sleep(5);
                if (moved + n > limit) {
                    out.write(buf, 0, (int) (limit - moved));
                    cuts.incrementAndGet();
                    break;
                }
                out.write(buf, 0, n);
                moved += n;
            }
        } catch (IOException ignored) {
            // the other direction closed
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            try {
                from.close();
                to.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }

    @Override
    public void close() throws IOException {
        server.close();
    }
}
