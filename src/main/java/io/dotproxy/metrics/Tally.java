package io.dotproxy.metrics;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.concurrent.atomic.LongAdder;

/**
 * A count kept by the proxy and read by Micrometer when metrics are scraped.
 *
 * <p>Quarkus's global registry is a composite: each increment of an ordinary counter walks the
 * child registries and allocates an iterator on the way (measured: 12% of the bytes allocated per
 * query), and increments made during start-up, before Quarkus attaches the Prometheus registry,
 * are lost. A function counter over a {@link LongAdder} has neither problem.
 */
public final class Tally {
    private final LongAdder count = new LongAdder();

    private Tally() {}

    /** A new tally, exported as the counter {@code name} with these tags (key, value, ...). */
    public static Tally register(MeterRegistry registry, String name, String description, String... tags) {
        Tally tally = new Tally();
        // The meter holds its state weakly; the tally holds it for as long as it is counted.
        FunctionCounter.builder(name, tally.count, LongAdder::sum)
                .description(description)
                .tags(tags)
                .register(registry);
        return tally;
    }

    public void increment() {
        count.increment();
    }
}
