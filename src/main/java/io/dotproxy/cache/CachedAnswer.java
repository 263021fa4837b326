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
 */
final class CachedAnswer {
    /** TTL of every record in a stale answer (RFC 8767 §4: "a TTL of 30 seconds is recommended"). */
    static final int STALE_TTL = 30;

    // Per-entry cost beyond the wire bytes: this object, its three arrays' headers and the table's
    // slots (a long, a reference and a mark, two to four slots per entry at its load).
    private static final int OVERHEAD = 160;
    /** The least an entry weighs: what bounds the number of entries a budget can hold. */
    static final int MIN_WEIGHT = OVERHEAD;

    private final byte[] question;
    private final int bits;
    private final byte[] wire;
    private final int[] ttlOffsets;
    private final long storedAt;
    private final long freshUntil;
    private final long staleUntil;
    private final long lifetimeNanos;
    private final boolean negative;
    // Written by the lanes that hit the entry, without a lock: two lanes at once may lose a hit or
    // both refresh it, which costs one upstream query and nothing else.
    private int hits;
    private boolean refreshing;

    CachedAnswer(byte[] question, int bits, byte[] wire, int[] ttlOffsets, long storedAt, long lifetimeSeconds,
                 long maxStaleNanos, boolean negative) {
        this.question = question;
        this.bits = bits;
        this.wire = wire;
        this.ttlOffsets = ttlOffsets;
        this.storedAt = storedAt;
        this.lifetimeNanos = TimeUnit.SECONDS.toNanos(lifetimeSeconds);
        this.freshUntil = storedAt + lifetimeNanos;
        this.staleUntil = freshUntil + maxStaleNanos;
        this.negative = negative;
    }

    /** Whether this entry answers {@code query}: the same question and the same DO, CD and EDNS bits. */
    boolean answers(ByteBuf query, Message parsed) {
        return Question.bits(parsed) == bits && Question.matches(question, query, parsed);
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
        return Header.rcode((wire[2] & 0xFF) << 8 | wire[3] & 0xFF) == Rcode.SERVFAIL;
    }

    /** Counts a hit; true when this hit should refresh the entry ahead of its expiry (prefetch). */
    boolean hitWantsRefresh(long now, int prefetchAfter) {
        hits++;
        if (prefetchAfter <= 0 || hits < prefetchAfter || refreshing) {
            return false;
        }
        // In the last tenth of its lifetime, as unbound's prefetch does.
        if (freshUntil - now > lifetimeNanos / 10) {
            return false;
        }
        refreshing = true;
        return true;
    }

    /** The answer for {@code query}, aged by the time since it was stored. */
    ByteBuf fresh(ByteBufAllocator alloc, ByteBuf query, Message parsed, long now) {
        long age = TimeUnit.NANOSECONDS.toSeconds(now - storedAt);
        ByteBuf out = copyFor(alloc, query, parsed);
        for (int offset : ttlOffsets) {
            out.setInt(offset, (int) Math.max(0, out.getUnsignedInt(offset) - age));
        }
        return out;
    }

    /** The answer for {@code query} served past its lifetime: every TTL {@value #STALE_TTL} seconds. */
    ByteBuf stale(ByteBufAllocator alloc, ByteBuf query, Message parsed) {
        ByteBuf out = copyFor(alloc, query, parsed);
        for (int offset : ttlOffsets) {
            out.setInt(offset, STALE_TTL);
        }
        return out;
    }

    private ByteBuf copyFor(ByteBufAllocator alloc, ByteBuf query, Message parsed) {
        ByteBuf out = alloc.directBuffer(wire.length).writeBytes(wire);
        addressTo(out, question.length - 4, query, parsed);
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
        return weight(wire.length, question.length, ttlOffsets.length);
    }

    /** What an entry of these sizes weighs, known before its bytes are copied. */
    static int weight(int wireLength, int questionLength, int ttlCount) {
        return OVERHEAD + wireLength + questionLength + 4 * ttlCount;
    }

    String name() {
        return Question.toString(question);
    }
}
