package io.dotproxy.cache;

import java.util.Arrays;

/**
 * Remembers which question keys were offered lately, roughly: a Bloom filter of 2^18 bits and
 * three probes, cleared after a window of keys ({@value #WINDOW} by default) so that "lately" keeps moving (TinyLFU's
 * doorkeeper and reset). A full cache admits a newcomer only when the doorkeeper has seen it
 * before: a burst of names asked once neither pushes out names asked again nor fills the heap with
 * entries that die old (each such entry would be promoted, then collected by a full GC).
 *
 * <p>A false positive (about 2% at the end of a window) admits a one-off name: harmless. Not
 * thread-safe: its cache segment's lock guards it.
 */
final class Doorkeeper {
    private static final int BITS_LOG2 = 18;
    /** Keys a whole cache's doorkeeping remembers; a segment's doorkeeper remembers its share. */
    static final int WINDOW = 30_000;
    private static final long MASK = (1L << BITS_LOG2) - 1;

    private final long[] bits = new long[(1 << BITS_LOG2) / 64];
    private final int window;
    private int added;

    /** A doorkeeper that remembers the last {@value #WINDOW} keys. */
    Doorkeeper() {
        this(WINDOW);
    }

    /** A doorkeeper that remembers the last {@code window} keys, roughly. */
    Doorkeeper(int window) {
        this.window = Math.max(1, window);
    }

    /** Records {@code key}; whether it had been recorded before (within the current window). */
    boolean seenBefore(long key) {
        // Three probes from three slices of the (well mixed) key.
        int a = (int) (key & MASK);
        int b = (int) ((key >>> BITS_LOG2) & MASK);
        int c = (int) ((key >>> (2 * BITS_LOG2)) & MASK);
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
