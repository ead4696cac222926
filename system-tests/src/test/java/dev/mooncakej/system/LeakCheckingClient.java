package dev.mooncakej.system;

import java.io.IOException;
import java.net.Authenticator;
import java.net.CookieHandler;
import java.net.ProxySelector;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.regex.Pattern;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;

/**
 * The system tests' HTTP client: every response any test receives is checked for what must never
 * reach a client (issue 23, item 4): no response header holds an address ({@code http://}, {@code
 * https://}) or an exception's class name, and no error body (status 400 and above) does either.
 * A response that does fails the test that received it, naming the request and the offending text.
 * Bodies of successful internal answers (the worker list a leader returns, with the credential) are
 * internal data, not checked.
 */
final class LeakCheckingClient extends HttpClient {
    private static final Pattern LEAK = Pattern.compile("https?://|\\b[A-Za-z_$][\\w$]*(Exception|Throwable)\\b"
            + "|\\b(java|javax|reactor|io\\.netty|org\\.springframework|dev\\.mooncakej)\\.[a-z]");

    private final HttpClient delegate;

    private LeakCheckingClient(HttpClient delegate) {
        this.delegate = delegate;
    }

    static HttpClient wrap(HttpClient client) {
        return client instanceof LeakCheckingClient ? client : new LeakCheckingClient(client);
    }

    static HttpClient create() {
        return wrap(HttpClient.newHttpClient());
    }

    /** The text in a response that must not be there, or null. */
    static String leak(HttpResponse<?> r) {
        for (var h : r.headers().map().entrySet())
            for (String v : h.getValue()) {
                var m = LEAK.matcher(v);
                if (m.find()) return "header " + h.getKey() + ": " + v;
            }
        if (r.statusCode() >= 400 && r.body() instanceof String body) {
            var m = LEAK.matcher(body);
            if (m.find()) return "error body (" + r.statusCode() + "): '" + m.group() + "' in " + body;
        }
        return null;
    }

    private static <T> HttpResponse<T> checked(HttpResponse<T> r) {
        String leak = leak(r);
        if (leak != null)
            throw new AssertionError(r.request().method() + " " + r.request().uri()
                    + ": a client received what must stay internal: " + leak);
        return r;
    }

    @Override
    public <T> HttpResponse<T> send(HttpRequest request, HttpResponse.BodyHandler<T> handler)
            throws IOException, InterruptedException {
        return checked(delegate.send(request, handler));
    }

    @Override
    public <T> CompletableFuture<HttpResponse<T>> sendAsync(HttpRequest request, HttpResponse.BodyHandler<T> handler) {
        return delegate.sendAsync(request, handler).thenApply(LeakCheckingClient::checked);
    }

    @Override
    public <T> CompletableFuture<HttpResponse<T>> sendAsync(
            HttpRequest request, HttpResponse.BodyHandler<T> handler, HttpResponse.PushPromiseHandler<T> push) {
        return delegate.sendAsync(request, handler, push).thenApply(LeakCheckingClient::checked);
    }

    @Override
    public Optional<CookieHandler> cookieHandler() {
        return delegate.cookieHandler();
    }

    @Override
    public Optional<Duration> connectTimeout() {
        return delegate.connectTimeout();
    }

    @Override
    public Redirect followRedirects() {
        return delegate.followRedirects();
    }

    @Override
    public Optional<ProxySelector> proxy() {
        return delegate.proxy();
    }

    @Override
    public SSLContext sslContext() {
        return delegate.sslContext();
    }

    @Override
    public SSLParameters sslParameters() {
        return delegate.sslParameters();
    }

    @Override
    public Optional<Authenticator> authenticator() {
        return delegate.authenticator();
    }

    @Override
    public Version version() {
        return delegate.version();
    }

    @Override
    public Optional<Executor> executor() {
        return delegate.executor();
    }

    @Override
    public WebSocket.Builder newWebSocketBuilder() {
        return delegate.newWebSocketBuilder();
    }

    @Override
    public void shutdown() {
        delegate.shutdown();
    }

    @Override
    public boolean awaitTermination(Duration duration) throws InterruptedException {
        return delegate.awaitTermination(duration);
    }

    @Override
    public boolean isTerminated() {
        return delegate.isTerminated();
    }

    @Override
    public void shutdownNow() {
        delegate.shutdownNow();
    }

    @Override
    public void close() {
        delegate.close();
    }
}
