package dev.mooncakej.cli;

import java.io.IOException;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;

/**
 * Debian's nginx as a reverse proxy on loopback, in front of a prefill and a decode worker
 * ({@code /prefill/...} and {@code /decode/...}), with kept-alive upstream connections and no
 * response buffering (the decode stream passes through as it comes): the anchor a conductor hop is
 * compared with. Started by the benchmark, in its own directory, stopped with it.
 */
final class NginxHop implements AutoCloseable {
    private final Process process;
    private final Path dir;
    final int port;

    private NginxHop(Process process, Path dir, int port) {
        this.process = process;
        this.dir = dir;
        this.port = port;
    }

    static boolean available() {
        return Files.isExecutable(Path.of("/usr/sbin/nginx"));
    }

    static NginxHop start(int port, int prefillPort, int decodePort) throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-nginx");
        String conf = """
                daemon off;
                worker_processes 1;
                pid %1$s/nginx.pid;
                error_log %1$s/error.log warn;
                events { worker_connections 1024; }
                http {
                    access_log off;
                    client_body_temp_path %1$s/body;
                    proxy_temp_path %1$s/proxy;
                    fastcgi_temp_path %1$s/fastcgi;
                    uwsgi_temp_path %1$s/uwsgi;
                    scgi_temp_path %1$s/scgi;
                    upstream prefill { server 127.0.0.1:%3$d; keepalive 16; }
                    upstream decode { server 127.0.0.1:%4$d; keepalive 16; }
                    server {
                        listen 127.0.0.1:%2$d;
                        location /prefill/ {
                            proxy_pass http://prefill/;
                            proxy_http_version 1.1;
                            proxy_set_header Connection "";
                            proxy_buffering off;
                        }
                        location /decode/ {
                            proxy_pass http://decode/;
                            proxy_http_version 1.1;
                            proxy_set_header Connection "";
                            proxy_buffering off;
                        }
                    }
                }
                """.formatted(dir, port, prefillPort, decodePort);
        Path file = dir.resolve("nginx.conf");
        Files.writeString(file, conf);
        Process p = new ProcessBuilder("/usr/sbin/nginx", "-p", dir.toString(), "-c", file.toString())
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("stdout.log").toFile())
                .start();
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < until) {
            if (!p.isAlive())
                throw new IOException("nginx exited: " + Files.readString(dir.resolve("stdout.log"))
                        + (Files.exists(dir.resolve("error.log")) ? Files.readString(dir.resolve("error.log")) : ""));
            try (Socket s = new Socket("127.0.0.1", port)) {
                return new NginxHop(p, dir, port);
            } catch (IOException notYet) {
                Thread.sleep(20);
            }
        }
        p.destroyForcibly();
        throw new IOException("nginx did not listen on 127.0.0.1:" + port + " within 10 s");
    }

    String prefillUrl() {
        return "http://127.0.0.1:" + port + "/prefill";
    }

    String decodeUrl() {
        return "http://127.0.0.1:" + port + "/decode";
    }

    @Override
    public void close() {
        process.descendants().forEach(ProcessHandle::destroy);
        process.destroy();
        try {
            if (!process.waitFor(5, TimeUnit.SECONDS)) process.destroyForcibly();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try (var files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException ignored) {
            // a temp directory
        }
    }
}
