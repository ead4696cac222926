package dev.mooncakej.web;

import dev.mooncakej.cluster.ClusterSettings;
import dev.mooncakej.cluster.InternalHttp;
import dev.mooncakej.kvcache.wire.ClusterCredential;
import dev.mooncakej.kvcache.wire.ControlFrame;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.core.instrument.config.MeterFilterReply;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.micrometer.tracing.Tracer;
import io.micrometer.tracing.exporter.SpanExportingPredicate;
import io.micrometer.tracing.propagation.Propagator;
import java.time.Duration;
import java.util.Map;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBean;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.health.actuate.endpoint.HealthEndpoint;
import org.springframework.boot.health.contributor.Status;
import org.springframework.boot.reactor.netty.NettyServerCustomizer;
import org.springframework.boot.ssl.NoSuchSslBundleException;
import org.springframework.boot.ssl.SslBundles;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.SmartLifecycle;
import org.springframework.context.annotation.Bean;
import org.springframework.core.env.Environment;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.web.reactive.HandlerMapping;
import org.springframework.web.reactive.config.WebFluxConfigurer;
import org.springframework.web.reactive.function.server.RouterFunction;
import org.springframework.web.reactive.function.server.RouterFunctions;
import org.springframework.web.reactive.function.server.ServerResponse;
import org.springframework.web.reactive.handler.SimpleUrlHandlerMapping;
import org.springframework.web.reactive.socket.server.WebSocketService;
import org.springframework.web.reactive.socket.server.support.HandshakeWebSocketService;
import org.springframework.web.reactive.socket.server.upgrade.ReactorNettyRequestUpgradeStrategy;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
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

    /**
     * Only the project's spans are exported, not those of Spring's HTTP server observations (which stay
     * for the {@code http_server_requests} metrics): a request's own span ({@code mooncakej.request},
     * a worker's {@code mooncakej.prefill} or {@code mooncakej.decode}) is the server span of the HTTP
     * request or control-channel call it came in, with what was done, and a scrape or a probe would
     * otherwise be a trace of its own every few seconds. Spring's spans are told by their tags: Spring's
     * {@code method} and {@code uri}, or OpenTelemetry's {@code http.request.method}.
     */
    @Bean
    SpanExportingPredicate onlyTheProjectsSpans() {
        return span -> {
            Map<String, String> tags = span.getTags();
            return !(tags.containsKey("uri") && tags.containsKey("method") || tags.containsKey("http.request.method"));
        };
    }

    /**
     * Every meter of the scrape passes Prometheus's lint ({@code promtool check metrics}): a meter
     * registered without help text (Spring's HTTP server timers) gets one; the two JVM counters
     * Micrometer names in abbreviated units (milliseconds, nanoseconds) are left out, the process's CPU
     * time being {@code process_cpu_usage} too; the processor count is {@code system_cpus}, since a gauge
     * ending in {@code _count} reads as part of a histogram.
     */
    @Bean
    MeterFilter lintCleanMeters() {
        return new MeterFilter() {
            @Override
            public MeterFilterReply accept(Meter.Id id) {
                return id.getName().equals("jvm.compilation.time")
                                || id.getName().equals("process.cpu.time")
                        ? MeterFilterReply.DENY
                        : MeterFilterReply.NEUTRAL;
            }

            @Override
            public Meter.Id map(Meter.Id id) {
                if (id.getName().equals("system.cpu.count")) id = id.withName("system.cpus");
                if (id.getDescription() != null) return id;
                String help = switch (id.getName()) {
                    case "http.server.requests" -> "HTTP requests this service answered, by route and status";
                    case "http.server.requests.active" -> "HTTP requests this service is answering now";
                    default -> "the meter " + id.getName();
                };
                return new Meter.Id(id.getName(), Tags.of(id.getTags()), id.getBaseUnit(), help, id.getType());
            }
        };
    }

    /**
     * {@code /health} and {@code /metrics} as vLLM serves them (what its users probe and scrape):
     * {@code /health} answers 200 with no body while the service's health is UP, 503 otherwise; {@code
     * /metrics} is the actuator's Prometheus scrape followed by the vLLM-named metrics
     * ({@link VllmMetrics}) when the service records them. Public, as {@code /actuator/health} and
     * {@code /actuator/prometheus} are.
     */
    @Bean
    RouterFunction<ServerResponse> vllmRoutes(
            ObjectProvider<PrometheusMeterRegistry> prometheus,
            ObjectProvider<VllmMetrics> vllm,
            ObjectProvider<HealthEndpoint> health) {
        MediaType text = MediaType.parseMediaType("text/plain; version=0.0.4; charset=utf-8");
        return RouterFunctions.route()
                .GET(
                        "/metrics",
                        req -> Mono.fromCallable(() -> {
                                    PrometheusMeterRegistry own = prometheus.getIfAvailable();
                                    VllmMetrics v = vllm.getIfAvailable();
                                    return (own == null ? "" : own.scrape()) + (v == null ? "" : v.scrape());
                                })
                                .subscribeOn(Schedulers.boundedElastic())
                                .flatMap(body ->
                                        ServerResponse.ok().contentType(text).bodyValue(body)))
                .GET(
                        "/health",
                        req -> Mono.fromCallable(() -> {
                                    HealthEndpoint h = health.getIfAvailable();
                                    return h != null
                                            && Status.UP.equals(h.health().getStatus());
                                })
                                .subscribeOn(Schedulers.boundedElastic())
                                .flatMap(up -> up
                                        ? ServerResponse.ok().build()
                                        : ServerResponse.status(HttpStatus.SERVICE_UNAVAILABLE)
                                                .build()))
                .build();
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
