package dev.mooncakej.system;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.URI;
import java.nio.charset.StandardCharsets;

/**
 * HTTP/1.1 over a plain socket, for requests a well-behaved client refuses to send: a path exactly as
 * given (percent escapes, {@code ;}, {@code //}, dot segments, backslashes are not normalised), a
 * WebSocket upgrade without its credential, a body sent a byte at a time.
 */
final class RawHttp {
    private RawHttp() {}

    /**
     * Sends {@code method rawPath} with the headers given (each "Name: value") and a body; returns the
     * status, -1 when the server closed without answering, -2 when it reset the connection (a server
     * that answers early and closes with part of the body unread can do that; never a success).
     */
    static int status(String base, String method, String rawPath, String body, String... headers) throws IOException {
        try {
            return send(base, method, rawPath, body, headers);
        } catch (SocketException e) {
            if (String.valueOf(e.getMessage()).contains("reset")
                    || String.valueOf(e.getMessage()).contains("Broken pipe")) return -2;
            throw e;
        }
    }

    private static int send(String base, String method, String rawPath, String body, String... headers)
            throws IOException {
        URI u = URI.create(base);
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(u.getHost(), u.getPort()), 3000);
            s.setSoTimeout(10_000);
            StringBuilder req = new StringBuilder()
                    .append(method)
                    .append(' ')
                    .append(rawPath)
                    .append(" HTTP/1.1\r\nHost: ")
                    .append(u.getHost())
                    .append(':')
                    .append(u.getPort())
                    .append("\r\nConnection: close\r\n");
            for (String h : headers) req.append(h).append("\r\n");
            byte[] b = body == null ? new byte[0] : body.getBytes(StandardCharsets.UTF_8);
            if (body != null)
                req.append("Content-Type: application/json\r\nContent-Length: ")
                        .append(b.length)
                        .append("\r\n");
            req.append("\r\n");
            s.getOutputStream().write(req.toString().getBytes(StandardCharsets.ISO_8859_1));
            s.getOutputStream().write(b);
            s.getOutputStream().flush();
            return statusOf(s.getInputStream());
        }
    }

    /** The status code of the response arriving on {@code in}; -1 when the server closed without answering. */
    static int statusOf(InputStream in) throws IOException {
        StringBuilder line = new StringBuilder();
        for (int c; (c = in.read()) >= 0 && c != '\n'; ) line.append((char) c);
        String l = line.toString().strip();
        if (l.isEmpty()) return -1;
        String[] parts = l.split(" ");
        if (parts.length < 2 || !parts[0].startsWith("HTTP/")) throw new IOException("not an HTTP status line: " + l);
        return Integer.parseInt(parts[1]);
    }
}
