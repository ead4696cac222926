package dev.mooncakej.web;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.ControlFrame;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.tracing.Tracer;
import io.micrometer.tracing.propagation.Propagator;
import java.time.Duration;
import java.util.Map;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBean;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import org.springframework.boot.ssl.NoSuchSslBundleException;
import org.springframework.boot.ssl.SslBundles;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.SmartLifecycle;
import org.springframework.context.annotation.Bean;
import org.springframework.core.env.Environment;
import org.springframework.web.reactive.HandlerMapping;
import org.springframework.web.reactive.config.WebFluxConfigurer;
import org.springframework.web.reactive.handler.SimpleUrlHandlerMapping;
import org.springframework.web.reactive.socket.server.WebSocketService;
import org.springframework.web.reactive.socket.server.support.HandshakeWebSocketService;
import org.springframework.web.reactive.socket.server.upgrade.ReactorNettyRequestUpgradeStrategy;
import reactor.netty.http.server.WebsocketServerSpec;

/**
 * What every service's web edge needs, once: the cluster credential (from {@code
 * mooncakej.cluster.secret} or {@code mooncakej.cluster.secret-file}; start-up fails naming the key
 * when neither holds a secret), the filter that checks it on the internal plane, {@code
 * mooncakej.cluster.*} bound to {@link ClusterSettings} (empty: single-host mode), and the internal
 * plane's callers' {@link InternalHttp}: with {@code mooncakej.cluster.tls-bundle} set, the service
 * must serve with the same Spring SSL bundle ({@code server.ssl.bundle}) and calls its peers over
 * https trusting that bundle. Every HTTP/1.1 connection gets {@link KeepAliveReads}, which keeps a
 * keep-alive connection reading after a queued request is answered synchronously (a Reactor Netty
 * 1.3.6 defect that otherwise stalls the caller's next request).
 */
@AutoConfiguration(afterName = "org.springframework.boot.autoconfigure.ssl.SslAutoConfiguration")
public class WebEdgeAutoConfiguration {
    @Bean
    ClusterCredential clusterCredential(Environment env) {
        return ClusterCredential.fromSettings(env::getProperty);
    }

    @Bean
    CanonicalPathFilter canonicalPathFilter() {
        return new CanonicalPathFilter();
    }

    @Bean
    InternalPlaneFilter internalPlaneFilter(ClusterCredential credential) {
        return new InternalPlaneFilter(credential);
    }

    /** {@code POST /internal/drain}, on a worker that drains ({@link Drainable}). */
    @Bean
    @ConditionalOnBean(Drainable.class)
    DrainController drainController(Drainable worker, ConfigurableApplicationContext context) {
        return new DrainController(worker, context);
    }

    @Bean
    NettyServerCustomizer keepAliveReads() {
        return KeepAliveReads::install;
    }

    /** {@code mooncakej.edge.*}: request and idle timeouts and the connection cap of this service's server. */
    @Bean
    ConnectionLimits connectionLimits(Environment env, ObjectProvider<MeterRegistry> meters) {
        ConnectionLimits.Settings d = ConnectionLimits.Settings.defaults();
        var limits = new ConnectionLimits(new ConnectionLimits.Settings(
                env.getProperty("mooncakej.edge.request-timeout", Duration.class, d.requestTimeout()),
                env.getProperty("mooncakej.edge.idle-timeout", Duration.class, d.idleTimeout()),
                env.getProperty("mooncakej.edge.max-connections", Integer.class, d.maxConnections())));
        var registry = meters.getIfAvailable();
        if (registry != null) {
            Gauge.builder("mooncakej.edge.connections.open", limits, ConnectionLimits::open)
                    .description("HTTP connections open on this service")
                    .register(registry);
            FunctionCounter.builder("mooncakej.edge.connections.refused", limits, ConnectionLimits::refused)
                    .description("connections closed on accept because mooncakej.edge.max-connections were open")
                    .register(registry);
        }
        return limits;
    }

    @Bean
    NettyServerCustomizer connectionLimitsCustomizer(ConnectionLimits limits) {
        return limits::apply;
    }

    /** A worker's control channel (only a service with a {@link ChannelOps} bean serves one). */
    @Bean
    @ConditionalOnBean(ChannelOps.class)
    ControlChannelEndpoint controlChannel(ChannelOps ops, ObjectProvider<MeterRegistry> meters) {
        return new ControlChannelEndpoint(ops, meters.getIfAvailable());
    }

    /** {@value ControlChannelEndpoint#PATH}, before the annotated routes. */
    @Bean
    @ConditionalOnBean(ChannelOps.class)
    HandlerMapping controlChannelMapping(ControlChannelEndpoint channel) {
        var mapping = new SimpleUrlHandlerMapping(Map.of(ControlChannelEndpoint.PATH, channel));
        mapping.setOrder(-1);
        return mapping;
    }

    /**
     * Closes the open control channels when the service stops: after the worker's membership has
     * deregistered and drained its work (that lifecycle's phase is the default, higher, so it stops
     * first), before the web server's graceful shutdown, which would otherwise wait for them.
     */
    @Bean
    @ConditionalOnBean(ChannelOps.class)
    SmartLifecycle controlChannelsClosing(ControlChannelEndpoint channel) {
        return new SmartLifecycle() {
            private volatile boolean running;

            @Override
            public void start() {
                running = true;
            }

            @Override
            public void stop() {
                running = false;
                channel.closeAll(Duration.ofSeconds(2));
            }

            @Override
            public boolean isRunning() {
                return running;
            }

            @Override
            public int getPhase() {
                return DEFAULT_PHASE - 1;
            }
        };
    }

    /** WebSocket upgrades that take a whole control frame (a prefill task can be megabytes). */
    @Bean
    WebFluxConfigurer controlFrameSize() {
        return new WebFluxConfigurer() {
            @Override
            public WebSocketService getWebSocketService() {
                return new HandshakeWebSocketService(new ReactorNettyRequestUpgradeStrategy(
                        () -> WebsocketServerSpec.builder().maxFramePayloadLength(ControlFrame.MAX_BYTES)));
            }
        };
    }

    /**
     * The spans of this service's requests: off ({@link Tracing#OFF}) unless {@link TracingEnvironment}
     * found an OTLP endpoint, then Micrometer Tracing over Spring Boot's OpenTelemetry SDK.
     */
    @Bean
    Tracing tracing(Environment env, ObjectProvider<Tracer> tracer, ObjectProvider<Propagator> propagator) {
        if (!env.getProperty(TracingEnvironment.ACTIVE, Boolean.class, false)) return Tracing.OFF;
        Tracer t = tracer.getIfAvailable();
        Propagator p = propagator.getIfAvailable();
        return t == null || p == null ? Tracing.OFF : new Tracing(t, p);
    }

    @Bean
    ClusterSettings clusterSettings(Environment env) {
        return Binder.get(env).bind("mooncakej.cluster", ClusterSettings.class).orElseGet(ClusterSettings::embedded);
    }

    @Bean
    InternalHttp internalHttp(
            ClusterCredential credential, ClusterSettings cluster, Environment env, ObjectProvider<SslBundles> ssl) {
        if (!cluster.tls()) return InternalHttp.plain(credential);
        String bundle = cluster.tlsBundle();
        if (!bundle.equals(env.getProperty("server.ssl.bundle")))
            throw new IllegalArgumentException("mooncakej.cluster.tls-bundle=" + bundle + " but server.ssl.bundle="
                    + env.getProperty("server.ssl.bundle") + ": expected the service to serve with the same bundle"
                    + " (it advertises https:// to its peers)");
        SslBundles bundles = ssl.getIfAvailable();
        try {
            if (bundles == null) throw new NoSuchSslBundleException(bundle, "no SSL bundles are configured");
            return new InternalHttp(credential, bundles.getBundle(bundle).createSslContext());
        } catch (NoSuchSslBundleException e) {
            throw new IllegalArgumentException("mooncakej.cluster.tls-bundle=" + bundle
                    + ": no such SSL bundle; expected spring.ssl.bundle.pem." + bundle
                    + ".keystore/truststore (config/cluster.yaml shows one)");
        }
    }
}
