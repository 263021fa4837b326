package io.dotproxy.config;

import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.ServerMetrics;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.TlsClientContext;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamAddress;
import io.dotproxy.upstream.UpstreamMetrics;
import io.dotproxy.upstream.Upstreams;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.EventLoopGroup;
import io.netty.util.NetUtil;
import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.vertx.core.Vertx;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * Turns the configuration into the running proxy, once, at start-up: checks every value (a bad one
 * stops start-up with one line naming the setting, the value and what is allowed), then builds the
 * upstreams, the pipeline and the listeners on Vert.x's event loops. Only this class reads
 * {@link ProxyConfig}; everything it builds takes plain values.
 */
@ApplicationScoped
public class Setup {
    private static final Logger LOG = Logger.getLogger(Setup.class);
    static final int DOT_PORT = 853;
    private static final String UPSTREAM_FORM =
            "expected address[:port][#tls-name], e.g. 1.1.1.1:853#cloudflare-dns.com or [2606:4700:4700::1111]:853#cloudflare-dns.com";

    @Inject
    ProxyConfig config;

    /** The seed tool's variable, in its exact spelling; it replaces {@code dotproxy.upstreams}. */
    @ConfigProperty(name = "DoT_HOST")
    Optional<String> dotHost;

    @Inject
    Vertx vertx;

    @Inject
    MeterRegistry registry;

    private volatile ProxyServer server;
    private Upstream upstreams;

    void start(@Observes StartupEvent event) {
        try {
            startProxy();
        } catch (ConfigError | UncheckedIOException e) {
            LOG.error(e.getMessage()); // a user error: one line, no stack trace
            Quarkus.asyncExit(1);
        }
    }

    private void startProxy() {
        List<UpstreamAddress> addresses = upstreams(config.upstreams(), dotHost);
        Duration timeout = positive("dotproxy.timeout", config.timeout(), Duration.ofMillis(10), Duration.ofSeconds(60));
        int port = range("dotproxy.listen.port", config.listen().port(), 0, 65535);
        String host = listenHost(config.listen().host());
        Optional<Path> caFile = caFile(config.tls().caFile());
        int maxPayload = range("dotproxy.udp.max-payload", config.udp().maxPayload(), 512, 65535);
        int maxConnections = range("dotproxy.tcp.max-connections", config.tcp().maxConnections(), 1, 1_000_000);
        Duration tcpIdle = positive("dotproxy.tcp.idle-timeout", config.tcp().idleTimeout(), Duration.ofMillis(100), Duration.ofHours(1));
        Duration upstreamIdle = positive("dotproxy.upstream.idle-timeout", config.upstream().idleTimeout(), Duration.ofMillis(100), Duration.ofHours(1));
        int maxInFlight = range("dotproxy.upstream.max-in-flight", config.upstream().maxInFlight(), 1, 65535);

        TlsClientContext tls;
        try {
            tls = TlsClientContext.create(caFile);
        } catch (IllegalArgumentException e) {
            throw new ConfigError("dotproxy.tls.ca-file", caFile.map(Path::toString).orElse(""), e.getMessage());
        }
        EventLoopGroup loops = vertx.nettyEventLoopGroup();
        DotUpstream.Settings upstreamSettings = new DotUpstream.Settings(
                timeout, upstreamIdle, maxInFlight, Duration.ofSeconds(1));
        List<Upstream> members = new ArrayList<>();
        for (UpstreamAddress address : addresses) {
            members.add(new DotUpstream(address, tls, loops.next(),
                    upstreamSettings, new UpstreamMetrics(registry, address.toString())));
        }
        upstreams = new Upstreams(members);
        ServerMetrics serverMetrics = new ServerMetrics(registry);
        QueryPipeline pipeline = new QueryPipeline(upstreams, timeout, maxPayload, serverMetrics);
        ProxyServer proxy = new ProxyServer(new ProxyServer.Settings(host, port, tcpIdle, maxConnections),
                pipeline, serverMetrics, loops);
        proxy.start();
        server = proxy;
        LOG.infof("Forwarding over DNS-over-TLS to %s", addresses);
    }

    void stop(@Observes ShutdownEvent event) {
        if (server != null) {
            server.stop();
        }
        if (upstreams != null) {
            upstreams.close();
        }
    }

    /** The running proxy, once start-up has bound its listeners. */
    public Optional<ProxyServer> server() {
        return Optional.ofNullable(server);
    }

    static List<UpstreamAddress> upstreams(List<String> specs, Optional<String> dotHost) {
        String setting = "dotproxy.upstreams";
        List<String> chosen = specs;
        if (dotHost.isPresent() && !dotHost.get().isBlank()) {
            setting = "DoT_HOST";
            chosen = List.of(dotHost.get());
        }
        if (chosen.isEmpty()) {
            throw new ConfigError(setting, "", "at least one upstream is needed; " + UPSTREAM_FORM);
        }
        List<UpstreamAddress> addresses = new ArrayList<>();
        for (String spec : chosen) {
            try {
                addresses.add(UpstreamAddress.parse(spec, DOT_PORT));
            } catch (IllegalArgumentException e) {
                throw new ConfigError(setting, String.join(",", chosen), "'" + spec + "': " + e.getMessage() + "; " + UPSTREAM_FORM);
            }
        }
        return addresses;
    }

    static String listenHost(String host) {
        String bare = host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
        if (!NetUtil.isValidIpV4Address(bare) && !NetUtil.isValidIpV6Address(bare)) {
            throw new ConfigError("dotproxy.listen.host", host,
                    "expected an IP address of this machine, :: for every address or 0.0.0.0 for every IPv4 address");
        }
        return bare;
    }

    static Optional<Path> caFile(Optional<String> file) {
        if (file.isEmpty() || file.get().isBlank()) {
            return Optional.empty();
        }
        Path path = Path.of(file.get());
        if (!Files.isReadable(path)) {
            throw new ConfigError("dotproxy.tls.ca-file", file.get(), "expected a readable PEM file of CA certificates");
        }
        return Optional.of(path);
    }

    static int range(String setting, int value, int min, int max) {
        if (value < min || value > max) {
            throw new ConfigError(setting, value, "expected a whole number from " + min + " to " + max);
        }
        return value;
    }

    static Duration positive(String setting, Duration value, Duration min, Duration max) {
        if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
            throw new ConfigError(setting, value, "expected a duration from " + min.toMillis() + "ms to "
                    + max.toSeconds() + "s, such as 2s or 500ms");
        }
        return value;
    }
}
