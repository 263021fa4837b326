package io.dotproxy.upstream;

import java.util.concurrent.ThreadLocalRandom;

/**
 * The message IDs in use on one connection. IDs are handed out sequentially from a random start,
 * so an ID comes back into use only after the sequence has gone round all 65,536 (handing out at
 * least {@code 65,536 × (1 − capacity / slots)} others, 39,936 for the default limit of 100): a late
 * answer to a timed-out query cannot meet a new query by chance (and the question check catches
 * what is left).
 *
 * <p>An ID in use sits in slot {@code id & mask} of a table at least twice as large as what the
 * connection may have in flight (capped at 65,536), so matching an answer is one array read; an ID
 * whose slot is taken is skipped. A table of all 65,536 IDs would cost 256 KiB per connection, and
 * connections come and go with traffic: each closed one's table would wait in the old generation
 * for a full collection. Not thread-safe: one connection, one event loop.
 *
 * @param <T> what waits on an ID
 */
final class IdTable<T> {
    static final int ID_SPACE = 1 << 16;

    private final Object[] values;
    /**
     * The ID held in each taken slot ({@code char}: an unsigned 16-bit value); null when there is
     * a slot for every ID, and the slot is the ID.
     */
    private final char[] ids;
    private final int mask;
    private int next = ThreadLocalRandom.current().nextInt(ID_SPACE);
    private int used;

    /**
     * @param capacity IDs in use at once at most (the connection's in-flight limit), 1 to 65,536
     */
    IdTable(int capacity) {
        if (capacity < 1 || capacity > ID_SPACE) {
            throw new IllegalArgumentException("capacity must be 1 to 65,536: " + capacity);
        }
        int slots = Math.min(ID_SPACE, Integer.highestOneBit(2 * capacity - 1) << 1);
        values = new Object[slots];
        ids = slots == ID_SPACE ? null : new char[slots];
        mask = slots - 1;
    }

    /** Takes a free ID for {@code value}; the caller keeps no more than the capacity in use. */
    int add(T value) {
        // Consecutive IDs fall in consecutive slots, so one lap of the table meets every slot.
        for (int i = 0; i < values.length; i++) {
            int id = (next + i) & (ID_SPACE - 1);
            int slot = id & mask;
            if (values[slot] == null) {
                values[slot] = value;
                if (ids != null) {
                    ids[slot] = (char) id;
                }
                next = id + 1;
                used++;
                return id;
            }
        }
        throw new IllegalStateException("all " + values.length + " ID slots are in use");
    }

    /** What waits on {@code id}, or null when that ID is not in use. */
    @SuppressWarnings("unchecked")
    T get(int id) {
        int slot = id & mask;
        Object value = values[slot];
        return value != null && holds(slot, id) ? (T) value : null;
    }

    /** Frees {@code id} if {@code value} holds it; whether it did. */
    boolean remove(int id, T value) {
        int slot = id & mask;
        if (value != null && values[slot] == value && holds(slot, id)) {
            values[slot] = null;
            used--;
            return true;
        }
        return false;
    }

    private boolean holds(int slot, int id) {
        return ids == null || ids[slot] == (char) id;
    }

    int used() {
        return used;
    }

    /** Slots in the table: the smallest power of two at least twice the capacity, at most 65,536. */
    int slots() {
        return values.length;
    }
}
