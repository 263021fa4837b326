package io.dotproxy.upstream;

import io.dotproxy.metrics.Tally;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.time.Instant;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The meters of one upstream, registered once at start-up; the hot path only increments.
 * Tagged with the upstream's name and an outcome, never a client or a query name.
 */
public final class UpstreamMetrics {
    /** Connection-level and protocol problems, counted once each (not once per query). */
    public enum Fault {
        /** TCP connect failed. */
        CONNECT,
        /** TLS handshake failed (certificate, name, protocol). */
        TLS,
        /**
         * The handshake passed, but no key on the validated certificate path is pinned (RFC 7858
         * §4.2). Counted apart from {@link #TLS}; the upstream's circuit treats it as one.
         */
        PIN,
        /** A connection broke with queries in flight. */
        CLOSED,
        /** An answer too short for a header, or not a response. */
        MALFORMED,
        /** An answer whose question is not the query's: dropped, the query keeps waiting. */
        MISMATCH,
        /** An answer for an ID nobody waits for any more (after a timeout). */
        LATE;

        String tag() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    private static final Duration[] RTT_BUCKETS = {
        // Sub-millisecond buckets: a resolver in the same data centre answers in tens of microseconds.
        Duration.ofMillis(1).dividedBy(20), Duration.ofMillis(1).dividedBy(10), Duration.ofMillis(1).dividedBy(5),
        Duration.ofMillis(1).dividedBy(4), Duration.ofMillis(1).dividedBy(2), Duration.ofMillis(1),
        Duration.ofMillis(2), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(25),
        Duration.ofMillis(50), Duration.ofMillis(100), Duration.ofMillis(250), Duration.ofMillis(500),
        Duration.ofSeconds(1), Duration.ofSeconds(2), Duration.ofSeconds(5)
    };

    private static final String REQUESTS = "dotproxy.upstream.requests";
    private static final String REQUESTS_HELP = "Queries sent to the upstream, by outcome";
    private static final String PROBES = "dotproxy.upstream.probes";
    private static final String PROBES_HELP = "Health probes sent while the upstream was down, by result";

    private final Timer rtt;
    private final Tally answered;
    private final EnumMap<UpstreamFailure, Tally> failures = new EnumMap<>(UpstreamFailure.class);
    private final EnumMap<Fault, Tally> errors = new EnumMap<>(Fault.class);
    private final Tally handshakes;
    private final Tally resumedHandshakes;
    private final Tally hedges;
    private final Tally probesAnswered;
    private final Tally probesFailed;
    private final AtomicInteger openConnections = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final MeterRegistry registry;
    private final String upstream;
    private volatile double certificateDaysLeft = Double.NaN;

    public UpstreamMetrics(MeterRegistry registry, String upstream) {
        this.registry = registry;
        this.upstream = upstream;
        rtt = Timer.builder("dotproxy.upstream.rtt")
                .description("Round-trip time of answered queries, from write to answer")
                .tag("upstream", upstream)
                .serviceLevelObjectives(RTT_BUCKETS)
                .register(registry);
        answered = byResult(REQUESTS, REQUESTS_HELP, "answered");
        for (UpstreamFailure failure : UpstreamFailure.values()) {
            failures.put(failure, byResult(REQUESTS, REQUESTS_HELP, failure.tag()));
        }
        for (Fault error : Fault.values()) {
            errors.put(error, byResult("dotproxy.upstream.errors", "Connection and protocol errors by kind", error.tag()));
        }
        handshakes = Tally.register(registry, "dotproxy.upstream.handshakes",
                "Completed TLS handshakes", "upstream", upstream);
        resumedHandshakes = Tally.register(registry, "dotproxy.upstream.handshakes.resumed",
                "Completed TLS handshakes that resumed an earlier session", "upstream", upstream);
        hedges = Tally.register(registry, "dotproxy.upstream.hedges",
                "Hedged second attempts sent to this upstream because another was slower than its p95", "upstream", upstream);
        probesAnswered = byResult(PROBES, PROBES_HELP, "answered");
        probesFailed = byResult(PROBES, PROBES_HELP, "failed");
        Gauge.builder("dotproxy.upstream.connections", openConnections, AtomicInteger::get)
                .description("Open connections")
                .tag("upstream", upstream)
                .register(registry);
        Gauge.builder("dotproxy.upstream.in.flight", inFlight, AtomicInteger::get)
                .description("Queries written and not yet answered")
                .tag("upstream", upstream)
                .register(registry);
        Gauge.builder("dotproxy.upstream.certificate.days.left", this, m -> m.certificateDaysLeft)
                .description("Days until the upstream's certificate expires, as of the last handshake")
                .tag("upstream", upstream)
                .register(registry);
    }

    /**
     * Removes every meter of this upstream from the registry: it was taken out of the settings.
     * Were it added again later, its new meters would start at zero, not at stale counts.
     */
    void remove() {
        for (Meter meter : List.copyOf(registry.getMeters())) {
            if (upstream.equals(meter.getId().getTag("upstream"))) {
                registry.remove(meter);
            }
        }
    }

    /** The upstream's name, as in its meters' {@code upstream} tag. */
    String upstream() {
        return upstream;
    }

    /** A counter of this upstream for one outcome, tagged {@code result}. */
    private Tally byResult(String name, String description, String result) {
        return Tally.register(registry, name, description, "upstream", upstream, "result", result);
    }

    /** Registers one gauge per circuit state: 1 for the current state, 0 for the others. */
    void trackState(UpstreamHealth health) {
        for (UpstreamHealth.State state : UpstreamHealth.State.values()) {
            Gauge.builder("dotproxy.upstream.state", health, h -> h.state() == state ? 1 : 0)
                    .description("Circuit state of the upstream")
                    .tags("upstream", upstream, "state", state.name().toLowerCase(Locale.ROOT))
                    .register(registry);
        }
    }

    void probe(boolean answered) {
        (answered ? probesAnswered : probesFailed).increment();
    }

    void hedged() {
        hedges.increment();
    }

    void resumedHandshake() {
        resumedHandshakes.increment();
    }

    void certificateExpires(Instant notAfter) {
        certificateDaysLeft = Duration.between(Instant.now(), notAfter).toHours() / 24.0;
    }

    void sent() {
        inFlight.incrementAndGet();
    }

    void settled() {
        inFlight.decrementAndGet();
    }

    void answered(long rttNanos) {
        answered.increment();
        rtt.record(rttNanos, TimeUnit.NANOSECONDS);
    }

    void failed(UpstreamFailure failure) {
        failures.get(failure).increment();
    }

    void error(Fault error) {
        errors.get(error).increment();
    }

    void handshake() {
        handshakes.increment();
    }

    void connectionOpened() {
        openConnections.incrementAndGet();
    }

    void connectionClosed() {
        openConnections.decrementAndGet();
    }
}
