package io.dotproxy.upstream;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.EnumMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The meters of one upstream, registered once at start-up; the hot path only increments.
 * Tagged with the upstream's name and an outcome, never a client or a query name.
 */
public final class UpstreamMetrics {
    /** Connection-level and protocol problems, counted once each (not once per query). */
    public enum Error {
        /** TCP connect failed. */
        CONNECT,
        /** TLS handshake failed (certificate, name, protocol). */
        TLS,
        /** A connection broke with queries in flight. */
        CLOSED,
        /** An answer too short for a header, or not a response. */
        MALFORMED,
        /** An answer whose question is not the query's: dropped, the query keeps waiting. */
        MISMATCH,
        /** An answer for an ID nobody waits for any more (after a timeout). */
        LATE;

        String tag() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    private static final Duration[] RTT_BUCKETS = {
        Duration.ofMillis(1).dividedBy(4), Duration.ofMillis(1).dividedBy(2), Duration.ofMillis(1),
        Duration.ofMillis(2), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(25),
        Duration.ofMillis(50), Duration.ofMillis(100), Duration.ofMillis(250), Duration.ofMillis(500),
        Duration.ofSeconds(1), Duration.ofSeconds(2), Duration.ofSeconds(5)
    };

    private final Timer rtt;
    private final Counter answered;
    private final EnumMap<UpstreamFailure, Counter> failures = new EnumMap<>(UpstreamFailure.class);
    private final EnumMap<Error, Counter> errors = new EnumMap<>(Error.class);
    private final Counter handshakes;
    private final AtomicInteger openConnections = new AtomicInteger();

    public UpstreamMetrics(MeterRegistry registry, String upstream) {
        rtt = Timer.builder("dotproxy.upstream.rtt")
                .description("Round-trip time of answered queries, from write to answer")
                .tag("upstream", upstream)
                .serviceLevelObjectives(RTT_BUCKETS)
                .register(registry);
        answered = requests(registry, upstream, "answered");
        for (UpstreamFailure failure : UpstreamFailure.values()) {
            failures.put(failure, requests(registry, upstream, failure.tag()));
        }
        for (Error error : Error.values()) {
            errors.put(error, Counter.builder("dotproxy.upstream.errors")
                    .description("Connection and protocol errors by kind")
                    .tags("upstream", upstream, "result", error.tag())
                    .register(registry));
        }
        handshakes = Counter.builder("dotproxy.upstream.handshakes")
                .description("Completed TLS handshakes")
                .tag("upstream", upstream)
                .register(registry);
        Gauge.builder("dotproxy.upstream.connections", openConnections, AtomicInteger::get)
                .description("Open TLS connections")
                .tag("upstream", upstream)
                .register(registry);
    }

    private static Counter requests(MeterRegistry registry, String upstream, String result) {
        return Counter.builder("dotproxy.upstream.requests")
                .description("Queries sent to the upstream, by outcome")
                .tags("upstream", upstream, "result", result)
                .register(registry);
    }

    void answered(long rttNanos) {
        answered.increment();
        rtt.record(rttNanos, TimeUnit.NANOSECONDS);
    }

    void failed(UpstreamFailure failure) {
        failures.get(failure).increment();
    }

    void error(Error error) {
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
