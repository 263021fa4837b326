package io.dotproxy.cache;

import java.util.Arrays;

/**
 * Remembers which question keys were offered lately, roughly: a Bloom filter (a cache segment's
 * share of 2^18 bits) and three probes, cleared after a window of keys (its share of {@value
 * #WINDOW}) so that "lately" keeps moving (TinyLFU's doorkeeper and reset). A full cache admits a newcomer only when the doorkeeper has seen it
 * before: a burst of names asked once neither pushes out names asked again nor fills the heap with
 * entries that die old (each such entry would be promoted, then collected by a full GC).
 *
 * <p>A false positive (about 2% at the end of a window) admits a one-off name: harmless. Not
 * thread-safe: its cache segment's lock guards it.
 */
final class Doorkeeper {
    /** Bits of a whole cache's doorkeeping, as a power of two; a segment's doorkeeper has its share. */
    static final int BITS_LOG2 = 18;
    private static final int MIN_BITS_LOG2 = 12;
    /** Keys a whole cache's doorkeeping remembers; a segment's doorkeeper remembers its share. */
    static final int WINDOW = 30_000;
    private final int bitsLog2;
    private final long mask;
    private final long[] bits;
    private final int window;
    private int added;

    /** A doorkeeper that remembers the last {@code window} keys, roughly, in 2^{@code bitsLog2} bits (at least 2^12). */
    Doorkeeper(int window, int bitsLog2) {
        this.window = Math.max(1, window);
        this.bitsLog2 = Math.max(MIN_BITS_LOG2, bitsLog2);
        this.mask = (1L << this.bitsLog2) - 1;
        this.bits = new long[(1 << this.bitsLog2) / 64];
    }

    /** Records {@code key}; whether it had been recorded before (within the current window). */
    boolean seenBefore(long key) {
        // Three probes from three slices of the (well mixed) key.
        int a = (int) (key & mask);
        int b = (int) ((key >>> bitsLog2) & mask);
        int c = (int) ((key >>> (2 * bitsLog2)) & mask);
        boolean seen = isSet(a) && isSet(b) && isSet(c);
        if (!seen) {
            if (added >= window) {
                Arrays.fill(bits, 0);
                added = 0;
            }
            set(a);
            set(b);
            set(c);
            added++;
        }
        return seen;
    }

    private boolean isSet(int bit) {
        return (bits[bit >>> 6] & (1L << bit)) != 0;
    }

    private void set(int bit) {
        bits[bit >>> 6] |= 1L << bit;
    }
}
