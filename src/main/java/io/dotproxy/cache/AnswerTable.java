package io.dotproxy.cache;

/**
 * The cache's store: {@link CachedAnswer}s by their 64-bit question key, bounded by the octets
 * the entries weigh, with CLOCK eviction (a read marks an entry; the hand passes over marked
 * entries once, clearing the mark, and evicts the first unmarked one), so a burst of one-off names
 * pushes out one-off names first while names asked again stay.
 *
 * <p>Hand-written rather than Caffeine because this is the hot path of every cache hit: measured
 * with {@code CacheBenchmark} (bench/README.md, "Cache hit path"), Caffeine's lookup cost about
 * twice this table's and a whole hit 400–700 ns more, with a boxed key per lookup; this table
 * allocates nothing on a read. It is open addressing on {@code long} keys (linear probing,
 * backward-shift deletion), grown by doubling up to what the budget can hold at half load.
 *
 * <p>Not thread-safe: the event loop owns it (see ProxyRuntime's threading model); only {@link
 * #size()} and {@link #bytes()} may be read from elsewhere, for the gauges.
 */
final class AnswerTable {
    private static final int MIN_SLOTS = 1 << 10;
    private static final int MAX_SLOTS = 1 << 30;
    private static final long FREE = 0; // a free slot; a key of 0 is stored as 1 (see slotKey)

    private long budget;
    private int maxSlots;
    private final Runnable evicted;
    private long[] keys;
    private CachedAnswer[] values;
    private boolean[] referenced;
    private int mask;
    private int hand;
    private volatile int size;
    private volatile long bytes;

    /**
     * @param budget octets the entries may weigh in all
     * @param evicted told of each entry evicted for room while it could still be served
     */
    AnswerTable(long budget, Runnable evicted) {
        this.evicted = evicted;
        setBudget(budget);
        allocate(Math.min(MIN_SLOTS, maxSlots));
    }

    private void setBudget(long octets) {
        budget = octets;
        long mostEntries = Math.max(1, octets / CachedAnswer.MIN_WEIGHT);
        maxSlots = (int) Math.min(MAX_SLOTS, Math.max(MIN_SLOTS, Long.highestOneBit(mostEntries) << 2));
    }

    /**
     * From now on the entries may weigh {@code octets} in all: a smaller budget evicts (expired
     * entries and unmarked ones first, as for room) down to it, and gives back slots it no longer
     * needs; a larger one lets the table grow further. The entries that fit stay.
     */
    void resize(long octets, long now) {
        setBudget(octets);
        while (size > 0 && (bytes > budget || size > maxSlots / 2)) {
            evictOne(now);
        }
        int slots = keys.length;
        while (slots > MIN_SLOTS && (slots > maxSlots || size <= slots / 8)) {
            slots >>>= 1; // a quarter full after a shrink for few entries; at most half, as put() allows, at maxSlots
        }
        if (slots != keys.length) {
            rehash(slots);
        }
    }

    /** The entry under {@code key} that can still be served at {@code now}, or null; marks it used. */
    CachedAnswer get(long key, long now) {
        long k = slotKey(key);
        for (int i = home(k); ; i = (i + 1) & mask) {
            long probe = keys[i];
            if (probe == k) {
                CachedAnswer entry = values[i];
                if (!entry.isServable(now)) {
                    removeAt(i);
                    return null;
                }
                referenced[i] = true;
                return entry;
            }
            if (probe == FREE) {
                return null;
            }
        }
    }

    /** Keeps {@code entry} under {@code key}, in place of any entry there, evicting others for room. */
    void put(long key, CachedAnswer entry, long now) {
        long k = slotKey(key);
        int weight = entry.weight();
        int existing = find(k);
        if (existing >= 0) {
            removeAt(existing);
        }
        if (weight > budget) {
            return;
        }
        while (size > 0 && (bytes + weight > budget || (size + 1 > keys.length / 2 && keys.length == maxSlots))) {
            evictOne(now);
        }
        if (size + 1 > keys.length / 2) {
            grow();
        }
        int i = home(k);
        while (keys[i] != FREE) {
            i = (i + 1) & mask;
        }
        keys[i] = k;
        values[i] = entry;
        referenced[i] = false; // earns its mark when it is read
        bytes += weight;
        size++;
    }

    /**
     * Whether an entry of {@code weight} octets under {@code key} would push another out: the
     * table is at its budget and the key holds no entry to replace.
     */
    boolean wouldEvictFor(long key, int weight) {
        return bytes + weight > budget && find(slotKey(key)) < 0;
    }

    /** Removes every entry. */
    void clear() {
        allocate(Math.min(MIN_SLOTS, maxSlots));
        size = 0;
        bytes = 0;
    }

    /** Entries held, expired ones not yet found included. */
    int size() {
        return size;
    }

    /** Octets the entries weigh. */
    long bytes() {
        return bytes;
    }

    private int find(long k) {
        for (int i = home(k); ; i = (i + 1) & mask) {
            if (keys[i] == k) {
                return i;
            }
            if (keys[i] == FREE) {
                return -1;
            }
        }
    }

    /** Moves the hand to the next entry that goes: an expired one, or an unmarked one. */
    private void evictOne(long now) {
        while (true) {
            hand = (hand + 1) & mask;
            if (keys[hand] == FREE) {
                continue;
            }
            boolean servable = values[hand].isServable(now);
            if (servable && referenced[hand]) {
                referenced[hand] = false; // a second chance
                continue;
            }
            removeAt(hand);
            if (servable) {
                evicted.run();
            }
            hand = (hand - 1) & mask; // an entry shifted into this slot gets its turn too
            return;
        }
    }

    private void removeAt(int slot) {
        bytes -= values[slot].weight();
        size--;
        // Backward-shift deletion: pull later entries of the probe run into the gap, so that a
        // lookup never stops early at a free slot.
        int gap = slot;
        for (int j = (slot + 1) & mask; keys[j] != FREE; j = (j + 1) & mask) {
            if (((j - home(keys[j])) & mask) >= ((j - gap) & mask)) {
                keys[gap] = keys[j];
                values[gap] = values[j];
                referenced[gap] = referenced[j];
                gap = j;
            }
        }
        keys[gap] = FREE;
        values[gap] = null;
        referenced[gap] = false;
    }

    private void grow() {
        rehash(keys.length * 2);
    }

    private void rehash(int slots) {
        long[] oldKeys = keys;
        CachedAnswer[] oldValues = values;
        boolean[] oldReferenced = referenced;
        allocate(slots);
        for (int j = 0; j < oldKeys.length; j++) {
            if (oldKeys[j] != FREE) {
                int i = home(oldKeys[j]);
                while (keys[i] != FREE) {
                    i = (i + 1) & mask;
                }
                keys[i] = oldKeys[j];
                values[i] = oldValues[j];
                referenced[i] = oldReferenced[j];
            }
        }
    }

    private void allocate(int slots) {
        keys = new long[slots];
        values = new CachedAnswer[slots];
        referenced = new boolean[slots];
        mask = slots - 1;
        hand = 0;
    }

    private int home(long k) {
        return (int) (k ^ (k >>> 32)) & mask; // keys are already mixed (Question.key)
    }

    // 0 marks a free slot: key 0 shares slot key 1, and the entry's question check makes that a miss.
    private static long slotKey(long key) {
        return key == FREE ? 1 : key;
    }
}
