package io.dotproxy.guard;

import io.dotproxy.metrics.Tally;
import io.dotproxy.net.Transport;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.EnumMap;
import java.util.Locale;

/**
 * The guard's meters, registered once; tags are only {@code proto} and {@code result}, never a
 * client address: which clients were blocked is in the log, one line per block.
 */
public final class GuardMetrics {
    /** Why the guard did not admit a query. */
    enum Denial {
        /** The client is outside the allow-list. */
        NOT_ALLOWED,
        /** The client is over its rate limit. */
        RATE_LIMITED,
        /** The client is blocked for having stayed over its limit. */
        BLOCKED
    }

    private final EnumMap<Transport, EnumMap<Denial, Tally>> denied = new EnumMap<>(Transport.class);
    private final Tally blocks;
    // Set once the guard has a rate limiter; read by the gauges on the scraping thread.
    private volatile RateLimiter limiter;

    public GuardMetrics(MeterRegistry registry) {
        for (Transport transport : Transport.values()) {
            EnumMap<Denial, Tally> byReason = new EnumMap<>(Denial.class);
            for (Denial denial : Denial.values()) {
                byReason.put(denial, Tally.register(registry, "dotproxy.guard.denied",
                        "Queries the guard did not admit, by reason", "proto", transport.tag(),
                        "result", denial.name().toLowerCase(Locale.ROOT)));
            }
            denied.put(transport, byReason);
        }
        blocks = Tally.register(registry, "dotproxy.guard.blocks",
                "Clients blocked for staying over their rate limit (blocks started)");
        Gauge.builder("dotproxy.guard.clients", this, GuardMetrics::trackedClients)
                .description("Client prefixes the rate limiter tracks")
                .register(registry);
        Gauge.builder("dotproxy.guard.clients.blocked", this, GuardMetrics::blockedClients)
                .description("Client prefixes blocked now")
                .register(registry);
    }

    /** The limiter whose clients the gauges report. */
    void watch(RateLimiter limiter) {
        this.limiter = limiter;
    }

    void denied(Transport transport, Denial denial) {
        denied.get(transport).get(denial).increment();
    }

    void blockStarted() {
        blocks.increment();
    }

    private double trackedClients() {
        RateLimiter watched = limiter;
        return watched == null ? 0 : watched.trackedClients();
    }

    private double blockedClients() {
        RateLimiter watched = limiter;
        return watched == null ? 0 : watched.blockedClients();
    }
}
