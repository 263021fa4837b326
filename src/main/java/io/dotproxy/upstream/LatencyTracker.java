package io.dotproxy.upstream;

import java.util.Arrays;

/**
 * Recent round-trip times of one upstream: a smoothed mean for the {@code fastest} policy and a
 * 95th percentile for hedging. Written by the group's event loop, which records each answered
 * attempt; read by any thread.
 *
 * <p>The percentile comes from a ring of the last {@value #SAMPLES} samples, re-sorted every
 * {@value #RECOMPUTE_EVERY} samples: cheap, bounded, and quick to follow a change.
 */
final class LatencyTracker {
    private static final int SAMPLES = 128;
    private static final int RECOMPUTE_EVERY = 32;
    /** Weight of a new sample in the moving average (RFC 6298 uses 1/8 for SRTT). */
    private static final double ALPHA = 0.125;

    private final long[] ring = new long[SAMPLES];
    private final long[] sorted = new long[SAMPLES];
    private int next;
    private int filled;
    private int sinceRecompute;
    private volatile long smoothedNanos;
    private volatile long p95Nanos;

    void record(long rttNanos) {
        long previous = smoothedNanos;
        smoothedNanos = previous == 0 ? rttNanos : (long) (previous + ALPHA * (rttNanos - previous));
        ring[next] = rttNanos;
        next = (next + 1) % SAMPLES;
        filled = Math.min(filled + 1, SAMPLES);
        if (++sinceRecompute >= RECOMPUTE_EVERY || filled < RECOMPUTE_EVERY) {
            sinceRecompute = 0;
            int n = filled;
            System.arraycopy(ring, 0, sorted, 0, n);
            Arrays.sort(sorted, 0, n);
            p95Nanos = sorted[Math.min(n - 1, (int) Math.ceil(n * 0.95) - 1)];
        }
    }

    /** Smoothed round-trip time; 0 before the first answer. */
    long smoothedNanos() {
        return smoothedNanos;
    }

    /** 95th percentile of recent round-trip times; 0 before the first answer. */
    long p95Nanos() {
        return p95Nanos;
    }
}
