package io.dotproxy.config;

import io.dotproxy.cache.ResponseCache;
import io.dotproxy.guard.AddressSet;
import io.dotproxy.guard.Guard;
import io.dotproxy.guard.RateLimiter;
import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.TcpListener;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.Policy;
import io.dotproxy.upstream.SpkiPins;
import io.dotproxy.upstream.UpstreamAddress;
import io.dotproxy.upstream.UpstreamGroup;
import io.netty.util.NetUtil;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Reads {@link ProxyConfig} (and {@code DoT_HOST}) into one {@link ProxySettings} value. Every
 * range and cross-field rule is checked here and only here; a value the proxy cannot use stops
 * with a {@link ConfigError}: one line naming the setting, the value and what is allowed.
 */
final class SettingsReader {
    static final int DOT_PORT = 853;
    static final int PLAIN_PORT = 53;
    /** A closed circuit's first probe waits this long, doubling up to the cap (RFC 2308 §7.2: 5 min). */
    static final Duration FIRST_PROBE_BACK_OFF = Duration.ofSeconds(1);
    static final Duration MAX_PROBE_BACK_OFF = Duration.ofMinutes(5);
    private static final String UPSTREAM_FORM =
            "expected address[:port][#tls-name], e.g. 1.1.1.1:853#cloudflare-dns.com or [2606:4700:4700::1111]:853#cloudflare-dns.com";

    private SettingsReader() {}

    /**
     * The settings {@code config} describes.
     *
     * @param dotHost the seed tool's variable; when set and not blank it replaces {@code dotproxy.upstreams}
     * @throws ConfigError for the first value that cannot be used
     */
    static ProxySettings read(ProxyConfig config, Optional<String> dotHost) {
        settingsFile(config.configFile());
        ProxyConfig.Tcp tcp = config.tcp();
        ProxyServer.Settings listen = new ProxyServer.Settings(
                listenHost(config.listen().host()),
                range("dotproxy.listen.port", config.listen().port(), 0, 65535),
                new TcpListener.Settings(
                        positive("dotproxy.tcp.idle-timeout", tcp.idleTimeout(), Duration.ofMillis(100), Duration.ofHours(1)),
                        range("dotproxy.tcp.max-connections", tcp.maxConnections(), 1, 1_000_000),
                        range("dotproxy.tcp.max-connections-per-client", tcp.maxConnectionsPerClient(), 1, 1_000_000),
                        positive("dotproxy.tcp.frame-timeout", tcp.frameTimeout(), Duration.ofMillis(100), Duration.ofMinutes(1)),
                        range("dotproxy.tcp.max-queries", tcp.maxQueries(), 0, Integer.MAX_VALUE),
                        positive("dotproxy.tcp.max-age", tcp.maxAge(), Duration.ZERO, Duration.ofDays(1))),
                positive("dotproxy.shutdown.drain-delay", config.shutdown().drainDelay(), Duration.ZERO,
                        Duration.ofMinutes(10)),
                eventLoops(config.eventLoops()));
        QueryPipeline.Settings pipeline = new QueryPipeline.Settings(
                positive("dotproxy.timeout", config.timeout(), Duration.ofMillis(10), Duration.ofSeconds(60)),
                range("dotproxy.udp.max-payload", config.udp().maxPayload(), 512, 65535),
                range("dotproxy.max-in-flight", config.maxInFlight(), 1, 1_000_000),
                oneOf("dotproxy.ecs", config.ecs(), List.of("strip", "pass")).equals("strip"));
        return new ProxySettings(listen, guard(config), pipeline, cache(config.cache()),
                forwarding(config, dotHost));
    }

    /**
     * The settings file, when one is named, must be readable: its values were read as a source of
     * {@link ProxyConfig} already (see {@link SettingsFile}), and a file that could not be read
     * would silently leave them out.
     */
    static Optional<Path> settingsFile(Optional<String> configFile) {
        Optional<Path> path = SettingsFile.named(configFile);
        if (path.isPresent()) {
            try {
                SettingsFile.read(path.get());
            } catch (IOException | IllegalArgumentException e) {
                throw new ConfigError("dotproxy.config-file", configFile.get(),
                        "expected a readable properties file (" + (e.getMessage() == null ? e.getClass().getSimpleName()
                                : e.getMessage()) + ")");
            }
        }
        return path;
    }

    private static ResponseCache.Settings cache(ProxyConfig.Cache cache) {
        Duration minTtl = positive("dotproxy.cache.min-ttl", cache.minTtl(), Duration.ZERO, Duration.ofDays(1));
        Duration maxTtl = positive("dotproxy.cache.max-ttl", cache.maxTtl(), Duration.ofSeconds(1), Duration.ofDays(7));
        if (minTtl.compareTo(maxTtl) > 0) {
            throw new ConfigError("dotproxy.cache.min-ttl", written(minTtl),
                    "expected at most dotproxy.cache.max-ttl (" + written(maxTtl) + ")");
        }
        Duration staleAnswerTimeout = positive("dotproxy.cache.stale-answer-timeout", cache.staleAnswerTimeout(),
                Duration.ofMillis(1), Duration.ofSeconds(60));
        // At or past dotproxy.timeout the timer never fires first: the stale answer comes with the
        // failure at the deadline instead, which is still an answer; no reason to refuse to start.
        return new ResponseCache.Settings(cache.enabled(),
                size("dotproxy.cache.max-size", cache.maxSize(), 64 * 1024, 64L << 30),
                minTtl, maxTtl,
                positive("dotproxy.cache.max-negative-ttl", cache.maxNegativeTtl(), Duration.ZERO, Duration.ofDays(1)),
                positive("dotproxy.cache.max-stale", cache.maxStale(), Duration.ZERO, Duration.ofDays(7)),
                staleAnswerTimeout,
                range("dotproxy.cache.prefetch", cache.prefetch(), 0, 1_000_000));
    }

    /** A size in octets as an operator writes one: {@code 65536}, {@code 64k}, {@code 8m}, {@code 1g}. */
    static long size(String setting, String value, long min, long max) {
        String text = value.strip().toLowerCase(Locale.ROOT);
        long unit = 1;
        if (!text.isEmpty() && "kmg".indexOf(text.charAt(text.length() - 1)) >= 0) {
            unit = 1L << (10 * ("kmg".indexOf(text.charAt(text.length() - 1)) + 1));
            text = text.substring(0, text.length() - 1);
        }
        long octets;
        try {
            octets = Math.multiplyExact(Long.parseLong(text), unit);
        } catch (NumberFormatException | ArithmeticException e) {
            octets = -1;
        }
        if (octets < min || octets > max) {
            throw new ConfigError(setting, value, "expected a size from " + min / 1024 + "k to " + (max >> 30)
                    + "g, in octets or with a suffix k, m or g, such as 8m");
        }
        return octets;
    }

    private static Guard.Settings guard(ProxyConfig config) {
        AddressSet allow = addresses("dotproxy.allow", config.allow().orElse(AddressSet.PRIVATE_NETWORKS));
        if (allow.isEmpty()) {
            throw new ConfigError("dotproxy.allow", "", "at least one CIDR; 0.0.0.0/0,::/0 lets every client ask");
        }
        boolean dropRefusedUdp = oneOf("dotproxy.refuse", config.refuse(), List.of("answer", "drop")).equals("drop");
        ProxyConfig.RateLimit limit = config.rateLimit();
        AddressSet exempt = addresses("dotproxy.rate-limit.exempt", limit.exempt().orElse(List.of()));
        return new Guard.Settings(allow, dropRefusedUdp, rateLimit(limit), exempt);
    }

    /** The rate limit, or none when {@code qps} is 0 (the default). */
    private static Optional<RateLimiter.Settings> rateLimit(ProxyConfig.RateLimit limit) {
        double qps = limit.qps();
        if (!(qps >= 0 && qps <= 1_000_000)) {
            throw new ConfigError("dotproxy.rate-limit.qps", qps, "expected a number from 0 (off) to 1000000");
        }
        if (qps == 0) {
            return Optional.empty();
        }
        int burst = limit.burst().orElse((int) Math.min(1_000_000, Math.max(1, Math.ceil(2 * qps))));
        return Optional.of(new RateLimiter.Settings(qps,
                range("dotproxy.rate-limit.burst", burst, 1, 1_000_000),
                positive("dotproxy.rate-limit.block-after", limit.blockAfter(), Duration.ZERO, Duration.ofHours(1)),
                positive("dotproxy.rate-limit.block-time", limit.blockTime(), Duration.ofSeconds(1), Duration.ofHours(24)),
                range("dotproxy.rate-limit.slip", limit.slip(), 0, 100),
                range("dotproxy.rate-limit.ipv4-prefix", limit.ipv4Prefix(), 1, 32),
                range("dotproxy.rate-limit.ipv6-prefix", limit.ipv6Prefix(), 1, 64),
                range("dotproxy.rate-limit.max-clients", limit.maxClients(), 1, 10_000_000)));
    }

    private static AddressSet addresses(String setting, List<String> cidrs) {
        try {
            return AddressSet.parse(cidrs);
        } catch (IllegalArgumentException e) {
            throw new ConfigError(setting, String.join(",", cidrs),
                    e.getMessage() + "; expected CIDRs such as 10.0.0.0/8,fd00::/8 or single addresses");
        }
    }

    private static ProxySettings.Forwarding forwarding(ProxyConfig config, Optional<String> dotHost) {
        ProxyConfig.Upstream tuning = config.upstream();
        Map<String, Set<String>> pins = spkiPins(tuning.spkiPins().orElse(List.of()));
        List<DotResolver> dot = new ArrayList<>();
        Set<String> unused = new HashSet<>(pins.keySet());
        for (UpstreamAddress address : upstreams(config.upstreams(), dotHost)) {
            String name = tlsNameKey(address.tlsName());
            unused.remove(name);
            dot.add(new DotResolver(address, pins.getOrDefault(name, Set.of())));
        }
        if (!unused.isEmpty()) {
            // A pin that no upstream takes would leave the upstream it was meant for unpinned, silently.
            throw new ConfigError("dotproxy.upstream.spki-pins", String.join(",", tuning.spkiPins().orElse(List.of())),
                    "no upstream has the TLS name " + String.join(", ", new TreeSet<>(unused))
                            + "; pins are keyed by the #tls-name of an upstream (or its address without one)");
        }
        Duration attemptTimeout = positive("dotproxy.upstream.attempt-timeout", tuning.attemptTimeout(),
                Duration.ofMillis(10), Duration.ofSeconds(60));
        // Connect and handshake are bounded by one attempt, so a blackholed upstream fails over in time.
        DotUpstream.Settings connections = new DotUpstream.Settings(attemptTimeout,
                positive("dotproxy.upstream.idle-timeout", tuning.idleTimeout(), Duration.ofMillis(100), Duration.ofHours(1)),
                range("dotproxy.upstream.max-in-flight", tuning.maxInFlight(), 1, 65535),
                range("dotproxy.upstream.pool-size", tuning.poolSize(), 1, 64),
                handshakeRate(tuning.handshakesPerSecond()),
                range("dotproxy.upstream.handshake-burst", tuning.handshakeBurst(), 1, 1000));
        Set<String> retryOn = retryOn(config.retryOn());
        UpstreamGroup.Settings group = new UpstreamGroup.Settings(attemptTimeout,
                retryOn.contains("servfail"), retryOn.contains("refused"),
                positive("dotproxy.hedge.min-delay", config.hedge().minDelay(), Duration.ZERO, Duration.ofSeconds(60)),
                share("dotproxy.hedge.max-share", config.hedge().maxShare()),
                oneOf("dotproxy.all-down", config.allDown(), List.of("try", "servfail")).equals("try"));
        return new ProxySettings.Forwarding(dot, policy(config.policy()), fallback(config.fallback().orElse(List.of())),
                range("dotproxy.fallback-max-in-flight", config.fallbackMaxInFlight(), 1, 65535),
                caFile(config.tls().caFile()), connections, group,
                new Member.Probing(FIRST_PROBE_BACK_OFF, MAX_PROBE_BACK_OFF, attemptTimeout));
    }

    private static double handshakeRate(double rate) {
        if (!(rate > 0 && rate <= 1000)) {
            throw new ConfigError("dotproxy.upstream.handshakes-per-second", rate, "expected a number above 0 and at most 1000");
        }
        return rate;
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

    static String policy(String name) {
        String normalized = name.strip().toLowerCase(Locale.ROOT);
        if (!Policy.NAMES.contains(normalized)) {
            throw new ConfigError("dotproxy.policy", name, "expected one of " + String.join(", ", Policy.NAMES));
        }
        return normalized;
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
            String name = equals > 0 ? tlsNameKey(entry.substring(0, equals)) : "";
            String pin = equals > 0 ? entry.substring(equals + 1).strip() : "";
            if (name.isEmpty() || !SpkiPins.isWellFormed(pin)) {
                throw new ConfigError("dotproxy.upstream.spki-pins", entry,
                        "expected tls-name=base64 of a SHA-256 digest (44 characters), e.g. dns.example=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
            }
            pins.computeIfAbsent(name, n -> new HashSet<>()).add(pin);
        }
        return pins;
    }

    /**
     * A TLS name as pins are keyed: names compare case-insensitively and without a final dot, IP
     * literals by address, so that a pin cannot miss its upstream over how the name was written.
     */
    static String tlsNameKey(String name) {
        String key = name.strip().toLowerCase(Locale.ROOT);
        if (NetUtil.isValidIpV6Address(key)) {
            return NetUtil.bytesToIpAddress(NetUtil.createByteArrayFromIpAddressString(key));
        }
        return key.endsWith(".") ? key.substring(0, key.length() - 1) : key;
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

    /** The lanes asked for, or one per CPU the process may use (the JVM reads the container's limit). */
    static int eventLoops(Optional<Integer> asked) {
        return asked.map(n -> range("dotproxy.event-loops", n, 1, MAX_EVENT_LOOPS))
                .orElse(Math.min(MAX_EVENT_LOOPS, Runtime.getRuntime().availableProcessors()));
    }

    /** Lanes at most: far more cores than one proxy process should span. */
    static final int MAX_EVENT_LOOPS = 256;

    static int range(String setting, int value, int min, int max) {
        if (value < min || value > max) {
            throw new ConfigError(setting, value, "expected a whole number from " + min + " to " + max);
        }
        return value;
    }

    static Duration positive(String setting, Duration value, Duration min, Duration max) {
        if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
            throw new ConfigError(setting, written(value), "expected a duration from " + written(min) + " to "
                    + written(max) + ", such as 2s or 500ms");
        }
        return value;
    }

    /** A duration as an operator writes one: {@code 500ms}, {@code 2s}, {@code 10m}, {@code 1h}, {@code 1d}. */
    static String written(Duration duration) {
        long millis = duration.toMillis();
        for (var unit : List.of(Map.entry(86_400_000L, "d"), Map.entry(3_600_000L, "h"), Map.entry(60_000L, "m"),
                Map.entry(1000L, "s"))) {
            if (millis != 0 && millis % unit.getKey() == 0) {
                return millis / unit.getKey() + unit.getValue();
            }
        }
        return millis == 0 ? "0s" : millis + "ms";
    }
}
