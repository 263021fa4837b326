package io.dotproxy.config;

import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.Policy;
import io.dotproxy.upstream.SpkiPins;
import io.dotproxy.upstream.UpstreamAddress;
import io.dotproxy.upstream.UpstreamGroup;
import io.netty.util.NetUtil;
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
        ProxyServer.Settings listen = new ProxyServer.Settings(
                listenHost(config.listen().host()),
                range("dotproxy.listen.port", config.listen().port(), 0, 65535),
                positive("dotproxy.tcp.idle-timeout", config.tcp().idleTimeout(), Duration.ofMillis(100), Duration.ofHours(1)),
                range("dotproxy.tcp.max-connections", config.tcp().maxConnections(), 1, 1_000_000));
        QueryPipeline.Settings pipeline = new QueryPipeline.Settings(
                positive("dotproxy.timeout", config.timeout(), Duration.ofMillis(10), Duration.ofSeconds(60)),
                range("dotproxy.udp.max-payload", config.udp().maxPayload(), 512, 65535));
        return new ProxySettings(listen, pipeline, forwarding(config, dotHost));
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
