package io.dotproxy.upstream;

import java.util.concurrent.ThreadLocalRandom;

/**
 * The message IDs in use on one connection: a flat array of all 65,536 slots, indexed by ID, so
 * that matching an answer is one array read. IDs are handed out sequentially from a random start,
 * so an ID comes back into use only after 65,535 others: a late answer to a timed-out query cannot
 * meet a new query by chance (and the question check catches what is left).
 * Not thread-safe: one connection, one event loop.
 *
 * @param <T> what waits on an ID
 */
final class IdTable<T> {
    static final int SIZE = 1 << 16;

    private final Object[] slots = new Object[SIZE];
    private int next = ThreadLocalRandom.current().nextInt(SIZE);
    private int used;

    /** Takes a free ID for {@code value}; the caller keeps fewer than 65,536 in use. */
    int add(T value) {
        for (int i = 0; i < SIZE; i++) {
            int id = (next + i) & (SIZE - 1);
            if (slots[id] == null) {
                slots[id] = value;
                next = id + 1;
                used++;
                return id;
            }
        }
        throw new IllegalStateException("all 65,536 message IDs are in use");
    }

    @SuppressWarnings("unchecked")
    T get(int id) {
        return (T) slots[id & (SIZE - 1)];
    }

    /** Frees {@code id} if {@code value} holds it; whether it did. */
    boolean remove(int id, T value) {
        if (slots[id] == value && value != null) {
            slots[id] = null;
            used--;
            return true;
        }
        return false;
    }

    int used() {
        return used;
    }
}
