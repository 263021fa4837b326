package io.dotproxy.cache;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Rcode;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.util.concurrent.TimeUnit;

/**
 * One answer in the cache, kept as wire bytes: a hit copies them, writes the client's ID, RD bit
 * and question-name case, and ages every TTL by the time spent in the cache. Nothing is decoded
 * or encoded again (as dnsdist's packet cache does).
 *
 * <p>The stored bytes hold each TTL at its base value, the TTL the answer had when it was stored,
 * clamped as the cache's lifetime rules say; a copy served {@code n} seconds later says base − n.
 *
 * <p>Laid out for a cache of hundreds of thousands of entries: one array per entry holds the wire
 * bytes, whose question (right after the header) is the key's, kept in lower case, then each
 * TTL's offset in two octets; the times are longs, the lengths chars. Measured with 100,000
 * one-record answers (bench/README.md, "Footprint with 100,000 names"): about 170 octets of heap
 * per entry, table slots included, against 242 with the question and the TTL offsets in arrays of
 * their own.
 */
final class CachedAnswer {
    /** TTL of every record in a stale answer (RFC 8767 §4: "a TTL of 30 seconds is recommended"). */
    static final int STALE_TTL = 30;

    // Per-entry cost beyond the wire bytes and TTL offsets: this object (56 octets), its array's
    // header and padding (20), the table's slots (a long, a reference and a mark: 13 octets, two to
    // four slots per entry at its load).
    private static final int OVERHEAD = 112;
    /** The least an entry weighs: what bounds the number of entries a budget can hold. */
    static final int MIN_WEIGHT = OVERHEAD;

    private final byte[] bytes; // the wire bytes, then the TTL offsets
    private final long storedAt;
    private final long freshUntil;
    private final long staleUntil;
    private final char wireLength; // a DNS message has at most 65,535 octets
    private final char questionLength;
    private final byte bits;
    private final boolean negative;
    // Written by the lanes that hit the entry, without a lock: two lanes at once may lose a hit or
    // both refresh it, which costs one upstream query and nothing else.
    private int hits;
    private boolean refreshing;

    /**
     * @param question the key's question, as {@link Question#lowerCase} makes it; the answer's
     *     question must be the same but for case
     * @param bytes {@link #bytesFor} this answer: its wire bytes in the first {@code wireLength}
     *     octets; this entry takes it over and writes the rest
     * @param ttlOffsets where the TTLs are in the wire bytes
     */
    CachedAnswer(byte[] question, int bits, byte[] bytes, int wireLength, int[] ttlOffsets, long storedAt,
                 long lifetimeSeconds, long maxStaleNanos, boolean negative) {
        if (bytes.length != wireLength + 2 * ttlOffsets.length || wireLength < Header.LENGTH + question.length) {
            throw new IllegalArgumentException("an answer of " + wireLength + " octets with " + ttlOffsets.length
                    + " TTLs and a question of " + question.length + " in " + bytes.length + " octets");
        }
        // The question is the key's spelling: every served copy is given the client's (addressTo).
        System.arraycopy(question, 0, bytes, Header.LENGTH, question.length);
        for (int i = 0; i < ttlOffsets.length; i++) {
            bytes[wireLength + 2 * i] = (byte) (ttlOffsets[i] >>> 8);
            bytes[wireLength + 2 * i + 1] = (byte) ttlOffsets[i];
        }
        this.bytes = bytes;
        this.wireLength = (char) wireLength;
        this.questionLength = (char) question.length;
        this.bits = (byte) bits;
        this.storedAt = storedAt;
        this.freshUntil = storedAt + TimeUnit.SECONDS.toNanos(lifetimeSeconds);
        this.staleUntil = freshUntil + maxStaleNanos;
        this.negative = negative;
    }

    /** An array for an answer of {@code wireLength} octets with {@code ttlCount} TTLs, for the constructor. */
    static byte[] bytesFor(int wireLength, int ttlCount) {
        return new byte[wireLength + 2 * ttlCount];
    }

    /** Whether this entry answers {@code query}: the same question and the same DO, CD and EDNS bits. */
    boolean answers(ByteBuf query, Message parsed) {
        return Question.bits(parsed) == bits && Question.matches(bytes, Header.LENGTH, questionLength, query, parsed);
    }

    boolean isFresh(long now) {
        return now - freshUntil < 0;
    }

    /** Whether it may still be served stale (RFC 8767 §5: at most the max-stale time past expiry). */
    boolean isServable(long now) {
        return now - staleUntil < 0;
    }

    /** Nanoseconds this entry is kept in all, stale time included: how long the store holds it. */
    long keptNanos(long now) {
        return Math.max(0, staleUntil - now);
    }

    /** Whether it is a negative answer (NXDOMAIN or NODATA). */
    boolean isNegative() {
        return negative;
    }

    /** Whether it is a kept SERVFAIL: an error, never a stale answer in place of one. */
    boolean isServfail() {
        // Only NOERROR, NXDOMAIN and SERVFAIL are kept, so the header's four bits tell them apart.
        return Header.rcode((bytes[2] & 0xFF) << 8 | bytes[3] & 0xFF) == Rcode.SERVFAIL;
    }

    /** Counts a hit; true when this hit should refresh the entry ahead of its expiry (prefetch). */
    boolean hitWantsRefresh(long now, int prefetchAfter) {
        hits++;
        if (prefetchAfter <= 0 || hits < prefetchAfter || refreshing) {
            return false;
        }
        // In the last tenth of its lifetime, as unbound's prefetch does.
        if (freshUntil - now > (freshUntil - storedAt) / 10) {
            return false;
        }
        refreshing = true;
        return true;
    }

    /** The answer for {@code query}, aged by the time since it was stored. */
    ByteBuf fresh(ByteBufAllocator alloc, ByteBuf query, Message parsed, long now) {
        long age = TimeUnit.NANOSECONDS.toSeconds(now - storedAt);
        ByteBuf out = copyFor(alloc, query, parsed);
        for (int i = wireLength; i < bytes.length; i += 2) {
            int offset = ttlOffset(i);
            out.setInt(offset, (int) Math.max(0, out.getUnsignedInt(offset) - age));
        }
        return out;
    }

    /** The answer for {@code query} served past its lifetime: every TTL {@value #STALE_TTL} seconds. */
    ByteBuf stale(ByteBufAllocator alloc, ByteBuf query, Message parsed) {
        ByteBuf out = copyFor(alloc, query, parsed);
        for (int i = wireLength; i < bytes.length; i += 2) {
            out.setInt(ttlOffset(i), STALE_TTL);
        }
        return out;
    }

    private int ttlOffset(int at) {
        return (bytes[at] & 0xFF) << 8 | bytes[at + 1] & 0xFF;
    }

    private ByteBuf copyFor(ByteBufAllocator alloc, ByteBuf query, Message parsed) {
        ByteBuf out = alloc.directBuffer(wireLength).writeBytes(bytes, 0, wireLength);
        addressTo(out, questionLength - 4, query, parsed);
        return out;
    }

    /**
     * Makes an answer to the same question the answer to {@code query}: its ID, its RD bit (RFC
     * 1035 §4.1.1; DO, CD and EDNS are part of the key) and its spelling of the name (answers echo
     * the question as asked; clients using 0x20 case randomisation check it). The spelling is left
     * as it is when the answer's name (of {@code nameLength} octets from the header's end) is
     * written at another length, through a compression pointer, say.
     */
    static void addressTo(ByteBuf answer, int nameLength, ByteBuf query, Message parsed) {
        int start = answer.readerIndex();
        Header.setId(answer, start, Header.id(query, parsed.start()));
        int flags = Header.flags(answer, start);
        Header.setFlags(answer, start, (flags & ~Header.FLAG_RD) | (parsed.flags() & Header.FLAG_RD));
        if (nameLength == parsed.questionEnd() - 4 - parsed.questionStart()) {
            answer.setBytes(start + Header.LENGTH, query, parsed.questionStart(), nameLength);
        }
    }

    /** Octets this entry holds in memory, roughly: what the cache's size bound counts. */
    int weight() {
        return OVERHEAD + bytes.length;
    }

    /** What an entry of these sizes weighs, known before its bytes are copied. */
    static int weight(int wireLength, int ttlCount) {
        return OVERHEAD + wireLength + 2 * ttlCount;
    }

    String name() {
        return Question.toString(bytes, Header.LENGTH);
    }
}
