package io.dotproxy.upstream;

import io.dotproxy.dns.Message;
import io.dotproxy.dns.WireFormatException;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.EventLoop;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Consumer;

/**
 * One upstream as a member of a group: the upstream itself, its health, and its recent latency.
 * It probes its own upstream with {@code . IN NS} (the query CoreDNS uses for health checks)
 * through the upstream's normal path, so a DoT probe rides a pooled connection when one is open.
 */
public final class Member {
    /**
     * How a member's circuit breaker probes.
     *
     * @param firstBackOff first wait before a probe after the circuit opens; it doubles from there
     * @param maxBackOff cap on that wait
     * @param probeTimeout how long a probe may take
     */
    public record Probing(Duration firstBackOff, Duration maxBackOff, Duration probeTimeout) {}

    private final Upstream upstream;
    private final UpstreamHealth health;
    private final LatencyTracker latency = new LatencyTracker();
    private final Duration probeTimeout;
    private final Runnable removeMeters;

    public Member(Upstream upstream, UpstreamHealth health, Duration probeTimeout) {
        this(upstream, health, probeTimeout, () -> { }, true);
    }

    /** @param probes whether this member probes for the circuit (the one on the circuit's home loop) */
    private Member(Upstream upstream, UpstreamHealth health, Duration probeTimeout, Runnable removeMeters, boolean probes) {
        this.upstream = upstream;
        this.health = health;
        this.probeTimeout = probeTimeout;
        this.removeMeters = removeMeters;
        if (probes) {
            health.setProber(this::probe);
        }
    }

    /**
     * Takes the member out of service for good (the settings no longer name it): no more probes,
     * its connections closed (queries still in flight on them fail), its meters removed.
     */
    public void retire() {
        close();
        removeMeters();
    }

    /** Stops probing and closes the upstream's connections (queries in flight on them fail); the meters stay. */
    public void close() {
        health.close();
        upstream.close();
    }

    /**
     * Removes the member's meters now, while it may still finish queries (they go uncounted): a
     * member that replaces it under the same name registers meters of the same names, which must
     * be its own. Done once however often asked ({@link Standing#removeMeters}); {@link #retire}
     * does it too.
     */
    public void removeMeters() {
        removeMeters.run();
    }

    /** A DoT resolver as a member, with its own meters and circuit breaker, run on {@code loop}. */
    public static Member dot(DotResolver resolver, TlsClientContext tls, EventLoop loop,
                             DotUpstream.Settings settings, Probing probing, MeterRegistry registry) {
        return dot(resolver, tls, loop, settings, probing, Standing.dot(resolver, settings, probing, loop, registry));
    }

    /**
     * A DoT resolver as the member of the lane that runs on {@code loop}: connections of its own,
     * the meters, circuit breaker and handshake budget of {@code standing}, shared with the other lanes.
     */
    public static Member dot(DotResolver resolver, TlsClientContext tls, EventLoop loop,
                             DotUpstream.Settings settings, Probing probing, Standing standing) {
        DotUpstream upstream = new DotUpstream(resolver, tls, loop, settings, standing.metrics(), standing.handshakes());
        return new Member(upstream, standing.health(), probing.probeTimeout(), standing::removeMeters,
                standing.home() == loop);
    }

    /** A plain DNS server (fallback only) as a member, with its own meters and circuit breaker. */
    public static Member plain(InetSocketAddress server, EventLoop loop, int maxInFlight, Probing probing,
                               MeterRegistry registry) {
        return plain(server, loop, maxInFlight, probing, Standing.plain(server, probing, loop, registry));
    }

    /** A plain DNS server as the member of the lane that runs on {@code loop}, sharing {@code standing}. */
    public static Member plain(InetSocketAddress server, EventLoop loop, int maxInFlight, Probing probing,
                               Standing standing) {
        PlainUpstream upstream = new PlainUpstream(server, loop, standing.metrics(), maxInFlight, standing.plainInFlight());
        return new Member(upstream, standing.health(), probing.probeTimeout(), standing::removeMeters,
                standing.home() == loop);
    }

    public Upstream upstream() {
        return upstream;
    }

    public UpstreamHealth health() {
        return health;
    }

    LatencyTracker latency() {
        return latency;
    }

    public String name() {
        return upstream.name();
    }

    private void probe(Consumer<Boolean> result) {
        ByteBuf query = Unpooled.buffer(17);
        query.writeShort(ThreadLocalRandom.current().nextInt(1 << 16)).writeShort(0x0100) // RD
                .writeShort(1).writeShort(0).writeShort(0).writeShort(0)
                .writeByte(0).writeShort(2).writeShort(1); // . IN NS
        Message parsed;
        try {
            parsed = Message.parse(query);
        } catch (WireFormatException e) {
            throw new IllegalStateException(e); // a constant message
        }
        upstream.query(query, parsed, System.nanoTime() + probeTimeout.toNanos(), new QueryCallback() {
            @Override
            public void onAnswer(ByteBuf answer) {
                answer.release();
                query.release();
                result.accept(true);
            }

            @Override
            public void onFailure(UpstreamFailure failure) {
                query.release();
                result.accept(false);
            }
        });
    }
}
