package io.dotproxy.upstream;

import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.EventLoop;
import java.net.InetSocketAddress;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What every lane's member of one upstream shares: its meters, its circuit breaker and (over DoT)
 * its handshake budget. Each lane (one event loop) keeps connections of its own to the upstream,
 * but a dead upstream is found once for all lanes, its meters count every lane's queries, and a
 * fleet reconnecting after an outage stays within the budget however many lanes each replica runs.
 */
public final class Standing {
    private final UpstreamMetrics metrics;
    private final UpstreamHealth health;
    private final TokenBucket handshakes; // null for a plain server
    /** A plain server's queries in flight over every lane (each has a socket of its own), for its cap. */
    private final AtomicInteger plainInFlight = new AtomicInteger();
    private final EventLoop home;
    private boolean metersRemoved;

    private Standing(UpstreamMetrics metrics, EventLoop home, Member.Probing probing, TokenBucket handshakes) {
        this.metrics = metrics;
        this.home = home;
        this.handshakes = handshakes;
        this.health = new UpstreamHealth(metrics.upstream(), home, probing.firstBackOff(), probing.maxBackOff(), metrics);
    }

    /**
     * The standing of a DoT resolver for one lane: its meters registered in {@code registry}, its
     * circuit breaker's timers and probes on {@code home}.
     */
    public static Standing dot(DotResolver resolver, DotUpstream.Settings settings, Member.Probing probing,
                               EventLoop home, MeterRegistry registry) {
        return dot(resolver, settings, probing, home, registry, 1);
    }

    /**
     * The standing of a DoT resolver shared by {@code lanes} lanes. The handshake budget's burst
     * has room for every lane's first connection on top of the settings' burst: each lane needs a
     * connection of its own at start, after a reload, and when the upstream comes back, and a lane
     * left without one would fail its queries until the budget refills.
     */
    public static Standing dot(DotResolver resolver, DotUpstream.Settings settings, Member.Probing probing,
                               EventLoop home, MeterRegistry registry, int lanes) {
        return new Standing(new UpstreamMetrics(registry, resolver.toString()), home, probing,
                new TokenBucket(settings.handshakeBurst() + lanes - 1, settings.handshakesPerSecond()));
    }

    /** The standing of a plain DNS server (fallback only). */
    public static Standing plain(InetSocketAddress server, Member.Probing probing, EventLoop home,
                                 MeterRegistry registry) {
        return new Standing(new UpstreamMetrics(registry, PlainUpstream.nameOf(server)), home, probing, null);
    }

    UpstreamMetrics metrics() {
        return metrics;
    }

    UpstreamHealth health() {
        return health;
    }

    AtomicInteger plainInFlight() {
        return plainInFlight;
    }

    TokenBucket handshakes() {
        return handshakes;
    }

    /** The loop the circuit breaker runs on: the member there probes for every lane. */
    EventLoop home() {
        return home;
    }

    /**
     * Removes the upstream's meters now (done once, whichever lane asks first): a standing that
     * replaces this one under the same name registers meters of the same names, which must be its own.
     */
    public synchronized void removeMeters() {
        if (!metersRemoved) {
            metersRemoved = true;
            metrics.remove();
        }
    }
}
