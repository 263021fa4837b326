package io.dotproxy.config;

import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.ServerMetrics;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.GroupMetrics;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.Policy;
import io.dotproxy.upstream.SpkiPins;
import io.dotproxy.upstream.TlsClientContext;
import io.dotproxy.upstream.UpstreamAddress;
import io.dotproxy.upstream.UpstreamGroup;
import io.netty.channel.EventLoop;
import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import io.micrometer.core.instrument.MeterRegistry;
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
    static final int PLAIN_PORT = 53;
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
    private volatile UpstreamGroup upstreams;

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
        Policy policy = policy(config.policy());
        List<InetSocketAddress> fallback = fallback(config.fallback().orElse(List.of()));
        Set<String> retryOn = retryOn(config.retryOn());
        boolean tryWhenAllDown = oneOf("dotproxy.all-down", config.allDown(), List.of("try", "servfail")).equals("try");
        Duration hedgeDelay = positive("dotproxy.hedge.min-delay", config.hedge().minDelay(), Duration.ZERO, Duration.ofSeconds(60));
        double hedgeShare = share("dotproxy.hedge.max-share", config.hedge().maxShare());
        int port = range("dotproxy.listen.port", config.listen().port(), 0, 65535);
        String host = listenHost(config.listen().host());
        Optional<Path> caFile = caFile(config.tls().caFile());
        int maxPayload = range("dotproxy.udp.max-payload", config.udp().maxPayload(), 512, 65535);
        int maxConnections = range("dotproxy.tcp.max-connections", config.tcp().maxConnections(), 1, 1_000_000);
        Duration tcpIdle = positive("dotproxy.tcp.idle-timeout", config.tcp().idleTimeout(), Duration.ofMillis(100), Duration.ofHours(1));
        ProxyConfig.Upstream tuning = config.upstream();
        Duration upstreamIdle = positive("dotproxy.upstream.idle-timeout", tuning.idleTimeout(), Duration.ofMillis(100), Duration.ofHours(1));
        int poolSize = range("dotproxy.upstream.pool-size", tuning.poolSize(), 1, 64);
        int maxInFlight = range("dotproxy.upstream.max-in-flight", tuning.maxInFlight(), 1, 65535);
        Duration attemptTimeout = positive("dotproxy.upstream.attempt-timeout", tuning.attemptTimeout(), Duration.ofMillis(10), Duration.ofSeconds(60));
        double handshakeRate = tuning.handshakesPerSecond();
        if (!(handshakeRate > 0 && handshakeRate <= 1000)) {
            throw new ConfigError("dotproxy.upstream.handshakes-per-second", handshakeRate, "expected a number above 0 and at most 1000");
        }
        int handshakeBurst = range("dotproxy.upstream.handshake-burst", tuning.handshakeBurst(), 1, 1000);
        Map<String, Set<String>> pins = spkiPins(tuning.spkiPins().orElse(List.of()));

        TlsClientContext tls;
        try {
            tls = TlsClientContext.create(caFile);
        } catch (IllegalArgumentException e) {
            throw new ConfigError("dotproxy.tls.ca-file", caFile.map(Path::toString).orElse(""), e.getMessage());
        }
        // The whole DNS path (listeners, client connections, upstream connections, timers) runs on
        // one event loop: a query and its answer never change threads. Measured on this machine,
        // handing each query and answer between two loops cost ~5x the CPU per query on UDP.
        // Scale out with replicas (or, later, one such loop per core with SO_REUSEPORT).
        EventLoop dnsLoop = vertx.nettyEventLoopGroup().next();
        GroupMetrics groupMetrics = new GroupMetrics(registry);
        // Probes back off from 1 s to 5 min (RFC 2308 §7.2) and take no longer than an attempt.
        Member.Probing probing = new Member.Probing(Duration.ofSeconds(1), Duration.ofMinutes(5), attemptTimeout);
        List<Member> members = new ArrayList<>();
        for (UpstreamAddress address : addresses) {
            // Connect and handshake are bounded by one attempt, so a blackholed upstream fails over in time.
            DotUpstream.Settings settings = new DotUpstream.Settings(attemptTimeout, upstreamIdle, maxInFlight, poolSize,
                    handshakeRate, handshakeBurst, pins.getOrDefault(address.tlsName().toLowerCase(Locale.ROOT), Set.of()));
            Member member = Member.dot(address, tls, dnsLoop, settings, probing, registry);
            member.upstream().connectAhead();
            members.add(member);
        }
        UpstreamGroup plain = null;
        if (!fallback.isEmpty()) {
            List<Member> plainMembers = new ArrayList<>();
            for (InetSocketAddress server : fallback) {
                plainMembers.add(Member.plain(server, dnsLoop, probing, registry));
            }
            plain = UpstreamGroup.plainFallback(plainMembers, attemptTimeout, dnsLoop, groupMetrics);
            LOG.warnf("Plain DNS fallback configured (%s): used only while every DoT upstream is down", fallback);
        }
        upstreams = new UpstreamGroup(members, policy, new UpstreamGroup.Settings(attemptTimeout,
                retryOn.contains("servfail"), retryOn.contains("refused"), hedgeDelay, hedgeShare, tryWhenAllDown),
                plain, dnsLoop, groupMetrics);
        ServerMetrics serverMetrics = new ServerMetrics(registry);
        QueryPipeline pipeline = new QueryPipeline(upstreams, timeout, maxPayload, serverMetrics);
        ProxyServer proxy = new ProxyServer(new ProxyServer.Settings(host, port, tcpIdle, maxConnections),
                pipeline, serverMetrics, dnsLoop);
        proxy.start();
        server = proxy;
        LOG.infof("Forwarding over DNS-over-TLS (%s) to %s (policy %s)", tls.provider(), addresses, config.policy());
    }

    void stop(@Observes ShutdownEvent event) {
        if (server != null) {
            server.stop();
        }
        if (upstreams != null) {
            upstreams.close();
        }
    }

    /** The upstream group, once started. */
    public Optional<UpstreamGroup> upstreams() {
        return Optional.ofNullable(upstreams);
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
            UpstreamAddress address;
            try {
                address = UpstreamAddress.parse(spec, DOT_PORT);
            } catch (IllegalArgumentException e) {
                throw new ConfigError(setting, String.join(",", chosen), "'" + spec + "': " + e.getMessage() + "; " + UPSTREAM_FORM);
            }
            if (addresses.contains(address)) {
                // One upstream, one set of meters and one circuit: a second entry would only skew the policy.
                throw new ConfigError(setting, String.join(",", chosen), "'" + spec + "' is listed twice; each upstream once");
            }
            addresses.add(address);
        }
        return addresses;
    }

    static Policy policy(String name) {
        try {
            return Policy.named(name);
        } catch (IllegalArgumentException e) {
            throw new ConfigError("dotproxy.policy", name, "expected one of " + String.join(", ", Policy.NAMES));
        }
    }

    static List<InetSocketAddress> fallback(List<String> specs) {
        List<InetSocketAddress> servers = new ArrayList<>();
        for (String spec : specs) {
            if (spec.isBlank()) {
                continue;
            }
            String allowed = "expected address[:port] of a plain DNS server (port 53 by default), e.g. 9.9.9.9 or [2620:fe::fe]:53";
            if (spec.contains("#")) {
                throw new ConfigError("dotproxy.fallback", spec, "a fallback is plain DNS and has no TLS name; " + allowed);
            }
            UpstreamAddress address;
            try {
                address = UpstreamAddress.parse(spec, PLAIN_PORT);
            } catch (IllegalArgumentException e) {
                throw new ConfigError("dotproxy.fallback", spec, e.getMessage() + "; " + allowed);
            }
            if (address.port() == DOT_PORT) {
                // RFC 7858 §3.1: port 853 is for DNS over TLS; never send clear text to it.
                throw new ConfigError("dotproxy.fallback", spec, "port 853 is reserved for DNS over TLS and gets no clear text; " + allowed);
            }
            servers.add(address.socketAddress());
        }
        return servers;
    }

    static Set<String> retryOn(List<String> values) {
        Set<String> kinds = new HashSet<>();
        for (String value : values) {
            kinds.add(oneOf("dotproxy.retry-on", value.strip().toLowerCase(Locale.ROOT), List.of("servfail", "refused", "none")));
        }
        if (kinds.contains("none") && kinds.size() > 1) {
            throw new ConfigError("dotproxy.retry-on", String.join(",", values), "none cannot be combined with other values");
        }
        return kinds;
    }

    static Map<String, Set<String>> spkiPins(List<String> entries) {
        Map<String, Set<String>> pins = new HashMap<>();
        for (String entry : entries) {
            int equals = entry.indexOf('=');
            String name = equals > 0 ? entry.substring(0, equals).strip().toLowerCase(Locale.ROOT) : "";
            String pin = equals > 0 ? entry.substring(equals + 1).strip() : "";
            if (name.isEmpty() || !SpkiPins.isWellFormed(pin)) {
                throw new ConfigError("dotproxy.upstream.spki-pins", entry,
                        "expected tls-name=base64 of a SHA-256 digest (44 characters), e.g. dns.example=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
            }
            pins.computeIfAbsent(name, n -> new HashSet<>()).add(pin);
        }
        return pins;
    }

    static String oneOf(String setting, String value, List<String> allowed) {
        if (!allowed.contains(value)) {
            throw new ConfigError(setting, value, "expected one of " + String.join(", ", allowed));
        }
        return value;
    }

    static double share(String setting, double value) {
        if (!(value >= 0 && value <= 1)) {
            throw new ConfigError(setting, value, "expected a share from 0 to 1, such as 0.05");
        }
        return value;
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
