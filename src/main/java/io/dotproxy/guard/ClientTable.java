package io.dotproxy.guard;

import java.util.concurrent.ThreadLocalRandom;

/**
 * The clients the rate limiter tracks: a hash table keyed by primitives (a masked IPv4 address or
 * the top 64 bits of an IPv6 one, and which of the two), bounded, with the clients in order of
 * their last query so that the least recently seen one can make room.
 *
 * <p>A {@code LinkedHashMap<Long, ...>} would box the key on every lookup; here the chains and the
 * recency list are links inside {@link Client}, so a lookup allocates nothing, and a client that
 * makes room is reused for the newcomer, so a flood of spoofed sources allocates nothing either
 * once the table is full. The hash is seeded at random per table: a source that picks its
 * addresses cannot aim them all at one chain.
 *
 * <p>Not thread-safe: its rate limiter's lock guards it. {@link #size()} may be read from another thread
 * (a gauge), and may then be a little stale.
 */
final class ClientTable {
    private static final int INITIAL_BUCKETS = 16;

    private final int capacity;
    private final long seed = ThreadLocalRandom.current().nextLong();
    private Client[] buckets = new Client[INITIAL_BUCKETS];
    private int size;
    private Client oldest;
    private Client newest;
    private Client spare;

    /** A table of at most {@code capacity} clients. */
    ClientTable(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1, was " + capacity);
        }
        this.capacity = capacity;
    }

    /** The client with this key, now the most recently seen; null if not tracked. */
    Client find(long key, boolean ipv6) {
        for (Client c = buckets[bucket(key, ipv6)]; c != null; c = c.nextInBucket) {
            if (c.key == key && c.ipv6 == ipv6) {
                if (c != newest) {
                    unlinkRecency(c);
                    linkNewest(c);
                }
                return c;
            }
        }
        return null;
    }

    /**
     * Tracks a client with this key, not tracked yet, as the most recently seen. Its state is left
     * as it was: the caller resets it. The table must not be full: make room with {@link #remove}.
     */
    Client add(long key, boolean ipv6) {
        if (size >= capacity) {
            throw new IllegalStateException("table full (" + capacity + " clients)");
        }
        Client c = spare != null ? spare : new Client();
        spare = null;
        c.key = key;
        c.ipv6 = ipv6;
        if (size >= buckets.length - (buckets.length >> 2)) {
            grow();
        }
        int index = bucket(key, ipv6);
        c.nextInBucket = buckets[index];
        buckets[index] = c;
        linkNewest(c);
        size++;
        return c;
    }

    /** Stops tracking {@code c}, which the table keeps to reuse for the next {@link #add}. */
    void remove(Client c) {
        int index = bucket(c.key, c.ipv6);
        if (buckets[index] == c) {
            buckets[index] = c.nextInBucket;
        } else {
            Client before = buckets[index];
            while (before.nextInBucket != c) {
                before = before.nextInBucket;
            }
            before.nextInBucket = c.nextInBucket;
        }
        c.nextInBucket = null;
        unlinkRecency(c);
        size--;
        spare = c;
    }

    /** The least recently seen client; null when the table is empty. */
    Client oldest() {
        return oldest;
    }

    boolean isFull() {
        return size >= capacity;
    }

    int size() {
        return size;
    }

    private int bucket(long key, boolean ipv6) {
        // MurmurHash3's 64-bit finalizer over the seeded key; the family keeps an IPv4 key apart
        // from an IPv6 key with the same bits (the table also compares it).
        long h = key ^ seed ^ (ipv6 ? 0x9E3779B97F4A7C15L : 0);
        h ^= h >>> 33;
        h *= 0xFF51AFD7ED558CCDL;
        h ^= h >>> 33;
        h *= 0xC4CEB9FE1A85EC53L;
        h ^= h >>> 33;
        return (int) h & (buckets.length - 1);
    }

    private void grow() {
        // Grows with the clients seen rather than sizing for the bound up front: most servers
        // see a few hundred clients, not the hundred thousand a flood may bring.
        buckets = new Client[buckets.length * 2];
        for (Client c = oldest; c != null; c = c.newer) {
            int index = bucket(c.key, c.ipv6);
            c.nextInBucket = buckets[index];
            buckets[index] = c;
        }
    }

    private void linkNewest(Client c) {
        c.older = newest;
        c.newer = null;
        if (newest != null) {
            newest.newer = c;
        } else {
            oldest = c;
        }
        newest = c;
    }

    private void unlinkRecency(Client c) {
        if (c.older != null) {
            c.older.newer = c.newer;
        } else {
            oldest = c.newer;
        }
        if (c.newer != null) {
            c.newer.older = c.older;
        } else {
            newest = c.older;
        }
        c.older = null;
        c.newer = null;
    }
}
