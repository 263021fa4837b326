package io.dotproxy.upstream;

import io.dotproxy.metrics.Tally;
import io.micrometer.core.instrument.MeterRegistry;

/** Meters of a group of upstreams as a whole, registered once. */
public final class GroupMetrics {
    private final Tally fallbackQueries;

    public GroupMetrics(MeterRegistry registry) {
        fallbackQueries = Tally.register(registry, "dotproxy.upstream.fallback.queries",
                "Queries sent in clear text to the plain fallback while every DoT upstream was down");
    }

    void fallback() {
        fallbackQueries.increment();
    }
}
