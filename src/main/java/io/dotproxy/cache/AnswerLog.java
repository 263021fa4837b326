package io.dotproxy.cache;

import java.util.Arrays;

/**
 * The cache's store: {@link AnswerRecord}s written one after another into byte arrays (chunks)
 * taken as they are needed, up to what the size bound allows, and found through an {@link
 * AnswerIndex} of question keys and positions. Nothing in it is a Java object per answer, so a full
 * cache churning through names makes no garbage: no entry is promoted to the old generation to die
 * there, and no full collection follows (bench/README.md, "The cache and the heap").
 *
 * <p>Eviction is CLOCK, as FIFO with reinsertion, a chunk at a time (as Segcache does, NSDI '21):
 * the chunks form a queue from oldest to newest; when the newest is full and no chunk is left to
 * take, the oldest is swept: a record read since the last sweep stays (compacted towards the
 * chunk's start, its mark cleared), every other record goes, and the swept chunk becomes the
 * newest, its free end taking the next records. A burst of names asked once thus pushes out names
 * asked once, while names asked again stay.
 *
 * <p>The size bound counts what the store holds: the chunks taken and the index's slots. A quarter
 * of it at most goes to the index, the rest to chunks. An answer larger than a chunk is not kept.
 *
 * <p>Not thread-safe: a cache segment's lock guards it; only {@link #size()} and {@link #bytes()}
 * may be read from elsewhere, for the gauges. A position is valid only while the lock is held.
 */
final class AnswerLog {
    // Holds an answer of any size but the very largest (all but the smallest bounds get such chunks).
    private static final int MIN_CHUNK = 64 << 10;
    private static final int MAX_CHUNK = 512 << 10; // a sweep of one moves a few thousand records at most
    // Sweeps that only compact, per answer stored, before sweeps push out: bounds the work under the lock.
    private static final int COMPACTING_SWEEPS = 4;
    /** The most a log holds: positions are ints. */
    static final long MAX_BYTES = 1L << 30;
    /** The least a log is given (the least {@code dotproxy.cache.max-size}): its index's first slots and two chunks. */
    static final long MIN_BYTES = 64 << 10;

    private final Runnable evicted;
    private long budget;
    private AnswerIndex index;
    private int chunkShift;
    private int maxChunks;
    private byte[][] chunks;
    private int[] fill; // octets written into each chunk
    private int[] queue; // chunks in use, oldest first: a ring of queueCount from queueStart
    private int queueStart;
    private int queueCount;
    private long liveBytes; // octets of the live records
    private volatile int size;
    private volatile long bytes;

    /**
     * @param budget octets the store may hold (its chunks and index), within [{@link #MIN_BYTES},
     *     {@link #MAX_BYTES}] (a bound outside is taken as the nearest end)
     * @param evicted told of each answer pushed out for room while it could still be served
     */
    AnswerLog(long budget, Runnable evicted) {
        this.evicted = evicted;
        shape(budget, chunkSizeFor(budget));
    }

    /** Sets the bound and what follows from it, holding nothing: no chunk, no record, an empty index. */
    private void shape(long octets, int chunkSize) {
        budget = bounded(octets);
        int slots = slotsFor(budget);
        index = new AnswerIndex(slots);
        chunkShift = Integer.numberOfTrailingZeros(chunkSize);
        maxChunks = (int) Math.max(1, (budget - (long) slots * AnswerIndex.SLOT_OCTETS) / chunkSize);
        chunks = new byte[maxChunks][];
        fill = new int[maxChunks];
        queue = new int[maxChunks];
        queueStart = 0;
        queueCount = 0;
        liveBytes = 0;
        size = 0;
        bytes = 0;
    }

    private static long bounded(long octets) {
        return Math.max(MIN_BYTES, Math.min(octets, MAX_BYTES));
    }

    /** Index slots for a bound: a power of two taking at most a quarter of it. */
    private static int slotsFor(long budget) {
        return (int) Math.max(AnswerIndex.MIN_SLOTS, Long.highestOneBit(budget / 4 / AnswerIndex.SLOT_OCTETS));
    }

    /**
     * A sixteenth of what the chunks may hold, within [64 KiB, 512 KiB], a power of two; but at
     * least two chunks however small the bound, so that a sweep always has another chunk to keep.
     */
    private static int chunkSizeFor(long budget) {
        long forChunks = bounded(budget) * 3 / 4; // the index takes a quarter at most
        int chunk = (int) Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Long.highestOneBit(forChunks / 16)));
        while (chunk > forChunks / 2) {
            chunk >>>= 1;
        }
        return chunk;
    }

    /** The position of the answer under {@code key} that can still be served at {@code now}, or -1; marks it used. */
    int find(long key, long now) {
        int position = index.get(key);
        if (position == AnswerIndex.ABSENT) {
            return -1;
        }
        byte[] chunk = chunk(position);
        int at = offset(position);
        if (!AnswerRecord.isServable(chunk, at, now)) {
            drop(key, position);
            return -1;
        }
        AnswerRecord.setUsed(chunk, at, true);
        return position;
    }

    /** Whether an answer is kept under {@code key}, servable or not; marks nothing. */
    boolean contains(long key) {
        return index.get(key) != AnswerIndex.ABSENT;
    }

    /** The array a position is in: with {@link #offset}, what {@link AnswerRecord}'s methods read. */
    byte[] chunk(int position) {
        return chunks[position >>> chunkShift];
    }

    int offset(int position) {
        return position & ((1 << chunkShift) - 1);
    }

    /**
     * Keeps {@code draft}'s answer under its key, in place of any there, pushing others out for
     * room; false when it is larger than a chunk (not kept, nothing pushed out).
     */
    boolean put(AnswerRecord.Draft draft, long now) {
        int position = place(draft.key(), draft.length(), now);
        if (position < 0) {
            return false;
        }
        draft.writeTo(chunk(position), offset(position));
        add(draft.key(), position);
        return true;
    }

    /**
     * Room for a record of {@code length} octets under {@code key}, whose record before (if any)
     * goes: its position, or -1 when it is larger than a chunk.
     */
    private int place(long key, int length, long now) {
        int old = index.get(key);
        if (old != AnswerIndex.ABSENT) {
            drop(key, old);
        }
        return length > chunkSize() ? -1 : reserve(length, now);
    }

    /**
     * Whether a newcomer would push another answer out: the index is at its bound, or every chunk
     * the bound allows is taken and the live answers fill all but one of them (see {@link
     * #underPressure}).
     */
    boolean isFull() {
        return !index.hasRoom() || (queueCount == maxChunks && underPressure(1));
    }

    /**
     * Whether making room for {@code length} octets must push answers out, rather than only squeeze
     * out the space of answers replaced or expired: the live answers would leave less than a chunk
     * free. Without that slack a sweep that only compacts could go round the log finding no room.
     */
    private boolean underPressure(int length) {
        return liveBytes + length > (long) (maxChunks - 1) << chunkShift;
    }

    /**
     * From now on the store may hold {@code octets}. A larger bound lets it take more chunks (of
     * the size it has). A smaller one moves the answers into a store of the new shape, those not
     * marked used first, each oldest first, so that what does not fit is pushed out in the order a
     * sweep would; it gives back what it held before.
     */
    void resize(long octets, long now) {
        long bound = bounded(octets);
        if (bound == budget) {
            return;
        }
        if (bound > budget) {
            grow(bound);
            return;
        }
        byte[][] oldChunks = chunks;
        int[] oldFill = fill;
        int[] oldQueue = queue;
        int oldStart = queueStart;
        int oldCount = queueCount;
        shape(bound, chunkSizeFor(bound));
        // Unmarked answers first, then marked ones, each oldest first: the last moved in are the last to go.
        for (boolean used : new boolean[] {false, true}) {
            for (int i = 0; i < oldCount; i++) {
                int c = oldQueue[(oldStart + i) % oldQueue.length];
                byte[] chunk = oldChunks[c];
                for (int at = 0; at < oldFill[c]; at += AnswerRecord.length(chunk, at)) {
                    if (AnswerRecord.isLive(chunk, at) && AnswerRecord.isUsed(chunk, at) == used
                            && AnswerRecord.isServable(chunk, at, now)) {
                        moveIn(chunk, at, now);
                    }
                }
            }
        }
    }

    /**
     * Raises the bound in place: more chunks of the same size, more index slots (fewer than a new
     * store of this bound would have, if the chunks kept would not leave them room); every record
     * stays where it is.
     */
    private void grow(long bound) {
        budget = bound;
        int slots = slotsFor(bound);
        while (slots > index.maxSlots()
                && ((long) maxChunks << chunkShift) + (long) slots * AnswerIndex.SLOT_OCTETS > bound) {
            slots >>>= 1;
        }
        index.allow(slots);
        int more = (int) Math.max(maxChunks, (bound - (long) slots * AnswerIndex.SLOT_OCTETS) >> chunkShift);
        chunks = Arrays.copyOf(chunks, more);
        fill = Arrays.copyOf(fill, more);
        int[] inOrder = new int[more];
        for (int i = 0; i < queueCount; i++) {
            inOrder[i] = queue[(queueStart + i) % maxChunks];
        }
        queue = inOrder;
        queueStart = 0;
        maxChunks = more;
    }

    /** Removes every answer and gives back every chunk and slot. */
    void clear() {
        shape(budget, chunkSizeFor(budget));
    }

    /** Answers held, expired ones not yet found included. */
    int size() {
        return size;
    }

    /** Octets the store holds: its chunks and its index's slots. */
    long bytes() {
        return bytes;
    }

    /** Each chunk's octets. */
    int chunkSize() {
        return 1 << chunkShift;
    }

    private void moveIn(byte[] from, int at, long now) {
        long key = AnswerRecord.key(from, at);
        int length = AnswerRecord.length(from, at);
        int position = place(key, length, now);
        if (position >= 0) { // a smaller store has smaller chunks
            System.arraycopy(from, at, chunk(position), offset(position), length);
            add(key, position);
        }
    }

    private void add(long key, int position) {
        index.put(key, position);
        liveBytes += AnswerRecord.length(chunk(position), offset(position));
        size++;
        account();
    }

    /** Removes the record at {@code position}: replaced, or past its time (which is no eviction). */
    private void drop(long key, int position) {
        AnswerRecord.kill(chunk(position), offset(position));
        index.remove(key, position);
        liveBytes -= AnswerRecord.length(chunk(position), offset(position));
        size--;
    }

    /** Room for a record of {@code length} octets at the newest chunk's end; sweeps the oldest when needed. */
    private int reserve(int length, long now) {
        while (!index.hasRoom()) {
            sweepOldest(now, true);
        }
        int newest = queueCount == 0 ? take() : queue[(queueStart + queueCount - 1) % maxChunks];
        for (int sweeps = 0; fill[newest] + length > chunkSize(); sweeps++) {
            // Sweeps that only compact found no room in a few chunks: the next ones push out too.
            newest = queueCount < maxChunks ? take()
                    : sweepOldest(now, sweeps >= COMPACTING_SWEEPS || underPressure(length));
        }
        int position = newest << chunkShift | fill[newest];
        fill[newest] += length;
        return position;
    }

    /** Takes a chunk not in use as the newest. */
    private int take() {
        int c = 0;
        while (chunks[c] != null) {
            c++;
        }
        chunks[c] = new byte[chunkSize()];
        fill[c] = 0;
        queue[(queueStart + queueCount) % maxChunks] = c;
        queueCount++;
        account();
        return c;
    }

    /**
     * Sweeps the oldest chunk and makes it the newest, its live records compacted towards its
     * start. When {@code evict}ing, this is the CLOCK hand: only the records read since the last
     * such sweep stay, their marks cleared (so that a second sweep with no read between keeps
     * nothing); otherwise only replaced and expired records go.
     */
    private int sweepOldest(long now, boolean evict) {
        int c = queue[queueStart];
        queueStart = (queueStart + 1) % maxChunks;
        byte[] chunk = chunks[c];
        int kept = 0;
        for (int at = 0, end = fill[c]; at < end; ) {
            int length = AnswerRecord.length(chunk, at);
            if (AnswerRecord.isLive(chunk, at)) {
                long key = AnswerRecord.key(chunk, at);
                int position = c << chunkShift | at;
                boolean servable = AnswerRecord.isServable(chunk, at, now);
                if (servable && (!evict || AnswerRecord.isUsed(chunk, at))) {
                    if (evict) {
                        AnswerRecord.setUsed(chunk, at, false); // a second chance
                    }
                    if (kept != at) {
                        System.arraycopy(chunk, at, chunk, kept, length);
                        index.move(key, position, c << chunkShift | kept);
                    }
                    kept += length;
                } else {
                    index.remove(key, position);
                    liveBytes -= length;
                    size--;
                    if (servable) {
                        evicted.run();
                    }
                }
            }
            at += length;
        }
        fill[c] = kept;
        queue[(queueStart + queueCount - 1) % maxChunks] = c;
        account();
        return c;
    }

    private void account() {
        bytes = (long) queueCount * chunkSize() + index.octets();
    }

}
