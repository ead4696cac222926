package dev.mooncakej.conductor;

import com.sun.net.httpserver.HttpServer;
import dev.mooncakej.engine.generate.ModelGenerator;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import java.util.function.Supplier;

/** Shared set-up of the conductor's tests: a generated model, a free port, HTTP helpers. */
final class ConductorFixtures {
    private static Path model;

    private ConductorFixtures() {}

    static synchronized Path model() throws IOException {
        if (model == null) {
            model = Files.createTempDirectory("conductor-test").resolve("tiny.gguf");
            ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        }
        return model;
    }

    static int closedPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /**
     * A stand-in decode worker whose KV pool is always full: it answers every reservation with 429,
     * the way a real decode worker does when it has no free block (used to drive the conductor's
     * overload path without filling a real pool).
     */
    static HttpServer fullDecodeWorker() throws IOException {
        return jsonWorker(
                "/internal/reserve", () -> 429, () -> "{\"code\":\"kv_full\",\"message\":\"no free KV blocks\"}");
    }

    /** A stand-in worker answering {@code path} with the given status and JSON body (asked anew for each call). */
    static HttpServer jsonWorker(String path, IntSupplier status, Supplier<String> body) throws IOException {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        s.createContext(path, ex -> {
            byte[] b = body.get().getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().add("Content-Type", "application/json");
            ex.sendResponseHeaders(status.getAsInt(), b.length);
            ex.getResponseBody().write(b);
            ex.close();
        });
        s.start();
        return s;
    }

    /**
     * Waits until the conductor on {@code port} has admitted every listed worker (its routing health
     * leaves UNKNOWN): a stand-in worker without a profile route is admitted unchecked, asynchronously.
     */
    static void awaitAdmitted(int port) throws IOException, InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < until) {
            String b = HttpClient.newHttpClient()
                    .send(
                            HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/actuator/health/routing"))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString())
                    .body();
            if (!b.contains("UNKNOWN")) return;
            Thread.sleep(50);
        }
        throw new IllegalStateException("the conductor on port " + port + " did not admit its workers in 20 s");
    }

    static HttpResponse<String> post(int port, String path, String body) throws IOException, InterruptedException {
        return HttpClient.newHttpClient()
                .send(
                        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                                .header("Content-Type", "application/json")
                                .POST(HttpRequest.BodyPublishers.ofString(body))
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
    }
}
