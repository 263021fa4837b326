package io.dotproxy.guard;

import io.dotproxy.guard.GuardMetrics.Denial;
import io.dotproxy.net.Transport;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.Objects;
import java.util.Optional;
import java.util.function.LongSupplier;

/**
 * The admission stage: an allow-list, then optional per-client rate limits.
 *
 * <p>A client outside the allow-list is refused (REFUSED with Extended DNS Error 18 "Prohibited",
 * RFC 8914), or over UDP, if so set, dropped: an open resolver's answers are what reflection attacks
 * are made of (RFC 5358), and a dropped query reflects nothing. An allowed client, unless exempt,
 * then passes the {@link RateLimiter}. Each denial is counted by reason in {@link GuardMetrics}.
 *
 * <p>Reads the client's address once, as primitives; an allowed client with no rate limit costs a
 * scan of the allow-list. An IPv4 client allocates nothing (the JIT drops the array that
 * {@code Inet4Address.getAddress()} makes); an IPv6 client, the 16-octet copy that
 * {@code Inet6Address.getAddress()} makes, as the JDK has no other way to read it. One guard serves
 * every lane: its allow-lists never change, and its rate limiter takes a lock.
 */
public final class Guard implements Admission {
    /**
     * What the guard enforces.
     *
     * @param allow the clients that may ask at all (an empty set lets no one in); see
     *     {@link AddressSet#PRIVATE_NETWORKS}
     * @param dropRefusedUdp whether a UDP query from outside {@code allow} is dropped rather than
     *     refused (over TCP it is always refused: the handshake proved the address)
     * @param rateLimit the limit of each client, if any
     * @param exempt allowed clients to which the rate limit does not apply (a local forwarder
     *     that speaks for many hosts, a monitoring probe)
     */
    public record Settings(AddressSet allow, boolean dropRefusedUdp, Optional<RateLimiter.Settings> rateLimit,
            AddressSet exempt) {
        public Settings {
            Objects.requireNonNull(allow, "allow");
            Objects.requireNonNull(rateLimit, "rateLimit");
            Objects.requireNonNull(exempt, "exempt");
        }
    }

    private final AddressSet allow;
    private final boolean dropRefusedUdp;
    private final AddressSet exempt;
    private final RateLimiter limiter; // null: no rate limit
    private final GuardMetrics metrics;

    /** The guard of {@code settings}, counting into {@code metrics}. */
    public Guard(Settings settings, GuardMetrics metrics) {
        this(settings, metrics, System::nanoTime);
    }

    /** The guard of {@code settings}, whose rate limiter reads the time from {@code nanoClock}. */
    Guard(Settings settings, GuardMetrics metrics, LongSupplier nanoClock) {
        this.allow = settings.allow();
        this.dropRefusedUdp = settings.dropRefusedUdp();
        this.exempt = settings.exempt();
        this.metrics = Objects.requireNonNull(metrics, "metrics");
        this.limiter = settings.rateLimit().map(limit -> new RateLimiter(limit, metrics, nanoClock)).orElse(null);
    }

    @Override
    public Verdict admit(InetSocketAddress client, Transport transport) {
        InetAddress address = client.getAddress();
        if (address == null) {
            return notAllowed(transport); // unresolved: never the case for a received packet
        }
        byte[] octets = address.getAddress();
        if (octets.length == 4) {
            return admitIpv4(AddressBits.ipv4(octets), transport);
        }
        long high = AddressBits.high(octets);
        long low = AddressBits.low(octets);
        if (AddressBits.isMapped(high, low)) {
            return admitIpv4((int) low, transport);
        }
        if (!allow.containsIpv6(high, low)) {
            return notAllowed(transport);
        }
        return limiter == null || exempt.containsIpv6(high, low) ? Verdict.ADMIT : limiter.checkIpv6(high, transport);
    }

    private Verdict admitIpv4(int address, Transport transport) {
        if (!allow.containsIpv4(address)) {
            return notAllowed(transport);
        }
        return limiter == null || exempt.containsIpv4(address) ? Verdict.ADMIT : limiter.checkIpv4(address, transport);
    }

    private Verdict notAllowed(Transport transport) {
        metrics.denied(transport, Denial.NOT_ALLOWED);
        return transport == Transport.UDP && dropRefusedUdp ? Verdict.DROP : Verdict.REFUSE;
    }

    /** The rate limiter, if there is a rate limit (for tests and gauges). */
    Optional<RateLimiter> limiter() {
        return Optional.ofNullable(limiter);
    }
}
