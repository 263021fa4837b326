package io.dotproxy.upstream;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;

/** Meters of a group of upstreams as a whole, registered once. */
public final class GroupMetrics {
    private final Counter fallbackQueries;

    public GroupMetrics(MeterRegistry registry) {
        fallbackQueries = Counter.builder("dotproxy.upstream.fallback.queries")
                .description("Queries sent in clear text to the plain fallback while every DoT upstream was down")
                .register(registry);
    }

    void fallback() {
        fallbackQueries.increment();
    }
}
