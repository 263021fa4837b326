package io.dotproxy.guard;

import java.time.Duration;
import java.util.function.LongSupplier;

/** A nanosecond clock that moves only when told. */
final class FakeClock implements LongSupplier {
    // Just short of where a long wraps, as System.nanoTime may: tests cross it, so a comparison of
    // instants instead of elapsed times would fail them.
    private long now = Long.MAX_VALUE - Duration.ofSeconds(5).toNanos();

    @Override
    public long getAsLong() {
        return now;
    }

    void advance(Duration duration) {
        now += duration.toNanos();
    }

    void advanceMillis(long millis) {
        now += millis * 1_000_000;
    }
}
