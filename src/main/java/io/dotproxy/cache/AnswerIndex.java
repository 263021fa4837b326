package io.dotproxy.cache;

/**
 * Where each answer of an {@link AnswerLog} is: question key to position, in two primitive arrays
 * (open addressing, linear probing, backward-shift deletion), so that a lookup allocates nothing
 * and the index holds no object the collector must trace. Grows by doubling at half load, up to a
 * bound the log gives it; allocated at the first key, released by {@link #clear()}.
 *
 * <p>Not thread-safe: its log's owner guards it.
 */
final class AnswerIndex {
    /** Octets a slot takes: its key and its position. */
    static final int SLOT_OCTETS = Long.BYTES + Integer.BYTES;
    static final int MIN_SLOTS = 1 << 10;
    static final int ABSENT = -1;
    private static final long FREE = 0; // a free slot; a key of 0 is stored as 1 (see slotKey)

    private int maxSlots;
    private long[] keys;
    private int[] positions;
    private int mask;
    private int size;

    /** An index of at most {@code maxSlots} slots (a power of two): at most half as many keys. */
    AnswerIndex(int maxSlots) {
        if (Integer.bitCount(maxSlots) != 1 || maxSlots < MIN_SLOTS) {
            throw new IllegalArgumentException("slots: a power of two, at least " + MIN_SLOTS + ": " + maxSlots);
        }
        this.maxSlots = maxSlots;
    }

    /** Lets it grow to {@code slots} (a power of two, not fewer than it may have now). */
    void allow(int slots) {
        if (Integer.bitCount(slots) != 1 || slots < maxSlots) {
            throw new IllegalArgumentException("slots: a power of two, at least " + maxSlots + ": " + slots);
        }
        maxSlots = slots;
    }

    /** The most slots it may grow to. */
    int maxSlots() {
        return maxSlots;
    }

    /** The position kept under {@code key}, or {@link #ABSENT}. */
    int get(long key) {
        int slot = find(slotKey(key));
        return slot < 0 ? ABSENT : positions[slot];
    }

    /** Whether one more key fits without a slot more than the bound gives. */
    boolean hasRoom() {
        return size + 1 <= maxSlots / 2;
    }

    /** Keeps {@code position} under {@code key}, replacing any; the caller made sure of {@link #hasRoom()}. */
    void put(long key, int position) {
        long k = slotKey(key);
        if (keys == null) {
            allocate(MIN_SLOTS);
        }
        int slot = find(k);
        if (slot >= 0) {
            positions[slot] = position;
            return;
        }
        if (size + 1 > keys.length / 2) {
            rehash(keys.length * 2);
        }
        int i = home(k);
        while (keys[i] != FREE) {
            i = (i + 1) & mask;
        }
        keys[i] = k;
        positions[i] = position;
        size++;
    }

    /** Removes {@code key} if it is kept at {@code position}; whether it was. */
    boolean remove(long key, int position) {
        int slot = find(slotKey(key));
        if (slot < 0 || positions[slot] != position) {
            return false;
        }
        removeAt(slot);
        return true;
    }

    /** Moves {@code key} from {@code from} to {@code to}; false if it was not kept at {@code from}. */
    boolean move(long key, int from, int to) {
        int slot = find(slotKey(key));
        if (slot < 0 || positions[slot] != from) {
            return false;
        }
        positions[slot] = to;
        return true;
    }

    int size() {
        return size;
    }

    /** Octets the slots take now. */
    long octets() {
        return keys == null ? 0 : (long) keys.length * SLOT_OCTETS;
    }

    /** Forgets every key and gives the slots back. */
    void clear() {
        keys = null;
        positions = null;
        size = 0;
    }

    private int find(long k) {
        if (keys == null) {
            return -1;
        }
        for (int i = home(k); ; i = (i + 1) & mask) {
            if (keys[i] == k) {
                return i;
            }
            if (keys[i] == FREE) {
                return -1;
            }
        }
    }

    private void removeAt(int slot) {
        size--;
        // Backward-shift deletion: pull later keys of the probe run into the gap, so that a lookup
        // never stops early at a free slot.
        int gap = slot;
        for (int j = (slot + 1) & mask; keys[j] != FREE; j = (j + 1) & mask) {
            if (((j - home(keys[j])) & mask) >= ((j - gap) & mask)) {
                keys[gap] = keys[j];
                positions[gap] = positions[j];
                gap = j;
            }
        }
        keys[gap] = FREE;
    }

    private void rehash(int slots) {
        long[] oldKeys = keys;
        int[] oldPositions = positions;
        allocate(slots);
        for (int j = 0; j < oldKeys.length; j++) {
            if (oldKeys[j] != FREE) {
                int i = home(oldKeys[j]);
                while (keys[i] != FREE) {
                    i = (i + 1) & mask;
                }
                keys[i] = oldKeys[j];
                positions[i] = oldPositions[j];
            }
        }
    }

    private void allocate(int slots) {
        keys = new long[slots];
        positions = new int[slots];
        mask = slots - 1;
    }

    private int home(long k) {
        return (int) (k ^ (k >>> 32)) & mask; // keys are already mixed (Question.key)
    }

    // 0 marks a free slot: key 0 shares slot key 1, and the record's question check makes that a miss.
    private static long slotKey(long key) {
        return key == FREE ? 1 : key;
    }
}
