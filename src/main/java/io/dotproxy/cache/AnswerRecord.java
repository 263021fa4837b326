package io.dotproxy.cache;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Rcode;
import io.dotproxy.dns.Ttls;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;

/**
 * One answer as the {@link AnswerLog} keeps it: a record in one of its byte arrays, a header of
 * bookkeeping followed by the answer's wire bytes and the offset of each TTL in them. A hit copies
 * the wire bytes, writes the client's ID, RD bit and question-name case, and ages every TTL by
 * the time spent in the cache; nothing is decoded or encoded again (as dnsdist's packet cache does).
 *
 * <p>The stored wire bytes hold each TTL at its base value, the TTL the answer had when it was
 * stored, clamped as the cache's lifetime rules say; a copy served {@code n} seconds later says
 * base − n. The question in them (right after the DNS header) is the key's, in lower case.
 *
 * <pre>
 *  0  int   record length, header included     20  long storedAt (nanoTime)
 *  4  byte  state: live, used, refreshing,      28  long freshUntil
 *           negative                            36  long staleUntil
 *  5  byte  question bits (DO, CD, EDNS)        44  wire bytes, then each TTL's offset in two octets
 *  6  char  wire length   8  char question length   10  char hits (saturating)   12  long key
 * </pre>
 *
 * <p>Static methods over (array, offset): a record is never an object, so that a cache of
 * hundreds of thousands of answers is a few arrays the collector never traces.
 */
final class AnswerRecord {
    /** TTL of every record in a stale answer (RFC 8767 §4: "a TTL of 30 seconds is recommended"). */
    static final int STALE_TTL = 30;
    /** Octets of a record before its wire bytes. */
    static final int HEADER = 44;

    private static final int LENGTH = 0;
    private static final int STATE = 4;
    private static final int BITS = 5;
    private static final int WIRE_LENGTH = 6;
    private static final int QUESTION_LENGTH = 8;
    private static final int HITS = 10;
    private static final int KEY = 12;
    private static final int STORED_AT = 20;
    private static final int FRESH_UNTIL = 28;
    private static final int STALE_UNTIL = 36;

    private static final int LIVE = 1;
    private static final int USED = 2;
    private static final int REFRESHING = 4;
    private static final int NEGATIVE = 8;

    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle CHAR = MethodHandles.byteArrayViewVarHandle(char[].class, ByteOrder.BIG_ENDIAN);

    private AnswerRecord() {}

    /**
     * An answer about to be kept: what a record is written from.
     *
     * @param question the key's question, as {@link Question#lowerCase} makes it; the answer's
     *     question must be the same but for case
     * @param answer the upstream's answer, {@code wireLength} octets from {@code answerStart}
     * @param ttlOffsets where the TTLs are, counted from the answer's first octet
     * @param ttlFloor the least TTL written (the min-ttl of a positive answer)
     * @param ttlCap the largest TTL written (max-ttl, or a negative answer's lifetime)
     */
    record Draft(long key, int bits, byte[] question, ByteBuf answer, int answerStart, int wireLength,
                 int[] ttlOffsets, long ttlFloor, long ttlCap, long storedAt, long freshUntil, long staleUntil,
                 boolean negative) {
        Draft {
            if (wireLength < Header.LENGTH + question.length) {
                throw new IllegalArgumentException("an answer of " + wireLength + " octets, a question of "
                        + question.length);
            }
        }

        /** Octets of the record. */
        int length() {
            return AnswerRecord.length(wireLength, ttlOffsets.length);
        }

        void writeTo(byte[] chunk, int at) {
            INT.set(chunk, at + LENGTH, length());
            chunk[at + STATE] = (byte) (LIVE | (negative ? NEGATIVE : 0));
            chunk[at + BITS] = (byte) bits;
            CHAR.set(chunk, at + WIRE_LENGTH, (char) wireLength);
            CHAR.set(chunk, at + QUESTION_LENGTH, (char) question.length);
            CHAR.set(chunk, at + HITS, (char) 0);
            LONG.set(chunk, at + KEY, key);
            LONG.set(chunk, at + STORED_AT, storedAt);
            LONG.set(chunk, at + FRESH_UNTIL, freshUntil);
            LONG.set(chunk, at + STALE_UNTIL, staleUntil);
            int wire = at + HEADER;
            answer.getBytes(answerStart, chunk, wire, wireLength);
            // The question is the key's spelling: every served copy is given the client's (addressTo).
            System.arraycopy(question, 0, chunk, wire + Header.LENGTH, question.length);
            int offsets = wire + wireLength;
            for (int i = 0; i < ttlOffsets.length; i++) {
                int offset = ttlOffsets[i];
                long ttl = Ttls.read(answer, answerStart + offset);
                INT.set(chunk, wire + offset, (int) Math.max(ttlFloor, Math.min(ttlCap, ttl)));
                CHAR.set(chunk, offsets + 2 * i, (char) offset);
            }
        }
    }

    /** Octets of a record for an answer of {@code wireLength} octets with {@code ttlCount} TTLs. */
    static int length(int wireLength, int ttlCount) {
        return HEADER + wireLength + 2 * ttlCount;
    }

    static int length(byte[] chunk, int at) {
        return (int) INT.get(chunk, at + LENGTH);
    }

    static long key(byte[] chunk, int at) {
        return (long) LONG.get(chunk, at + KEY);
    }

    /** Whether the record still holds an answer: false once it was replaced, expired or cleared. */
    static boolean isLive(byte[] chunk, int at) {
        return (chunk[at + STATE] & LIVE) != 0;
    }

    static void kill(byte[] chunk, int at) {
        chunk[at + STATE] &= ~LIVE;
    }

    /** Whether it was read since the CLOCK hand last passed (see {@link AnswerLog}). */
    static boolean isUsed(byte[] chunk, int at) {
        return (chunk[at + STATE] & USED) != 0;
    }

    static void setUsed(byte[] chunk, int at, boolean used) {
        chunk[at + STATE] = (byte) (used ? chunk[at + STATE] | USED : chunk[at + STATE] & ~USED);
    }

    static boolean isFresh(byte[] chunk, int at, long now) {
        return now - (long) LONG.get(chunk, at + FRESH_UNTIL) < 0;
    }

    /** Whether it may still be served stale (RFC 8767 §5: at most the max-stale time past expiry). */
    static boolean isServable(byte[] chunk, int at, long now) {
        return now - (long) LONG.get(chunk, at + STALE_UNTIL) < 0;
    }

    /** Whether it is a negative answer (NXDOMAIN or NODATA). */
    static boolean isNegative(byte[] chunk, int at) {
        return (chunk[at + STATE] & NEGATIVE) != 0;
    }

    /** Whether it is a kept SERVFAIL: an error, never a stale answer in place of one. */
    static boolean isServfail(byte[] chunk, int at) {
        // Only NOERROR, NXDOMAIN and SERVFAIL are kept, so the header's four bits tell them apart.
        int wire = at + HEADER;
        return Header.rcode((chunk[wire + 2] & 0xFF) << 8 | chunk[wire + 3] & 0xFF) == Rcode.SERVFAIL;
    }

    /** Whether it answers {@code query}: the same question and the same DO, CD and EDNS bits. */
    static boolean answers(byte[] chunk, int at, ByteBuf query, Message parsed) {
        return Question.bits(parsed) == chunk[at + BITS]
                && Question.matches(chunk, at + HEADER + Header.LENGTH, questionLength(chunk, at), query, parsed);
    }

    /** Counts a hit; true when this hit should refresh the record ahead of its expiry (prefetch). */
    static boolean hitWantsRefresh(byte[] chunk, int at, long now, int prefetchAfter) {
        int hits = Math.min(Character.MAX_VALUE, (char) CHAR.get(chunk, at + HITS) + 1);
        CHAR.set(chunk, at + HITS, (char) hits);
        if (prefetchAfter <= 0 || hits < prefetchAfter || (chunk[at + STATE] & REFRESHING) != 0) {
            return false;
        }
        // In the last tenth of its lifetime, as unbound's prefetch does.
        long storedAt = (long) LONG.get(chunk, at + STORED_AT);
        long freshUntil = (long) LONG.get(chunk, at + FRESH_UNTIL);
        if (freshUntil - now > (freshUntil - storedAt) / 10) {
            return false;
        }
        chunk[at + STATE] |= REFRESHING;
        return true;
    }

    /** The answer for {@code query}, aged by the time since it was stored. */
    static ByteBuf fresh(byte[] chunk, int at, ByteBufAllocator alloc, ByteBuf query, Message parsed, long now) {
        long age = TimeUnit.NANOSECONDS.toSeconds(now - (long) LONG.get(chunk, at + STORED_AT));
        ByteBuf out = copyFor(chunk, at, alloc, query, parsed);
        int wire = at + HEADER;
        int end = at + length(chunk, at);
        for (int i = wire + wireLength(chunk, at); i < end; i += 2) {
            int offset = (char) CHAR.get(chunk, i);
            long base = Integer.toUnsignedLong((int) INT.get(chunk, wire + offset));
            out.setInt(offset, (int) Math.max(0, base - age));
        }
        return out;
    }

    /** The answer for {@code query} served past its lifetime: every TTL {@value #STALE_TTL} seconds. */
    static ByteBuf stale(byte[] chunk, int at, ByteBufAllocator alloc, ByteBuf query, Message parsed) {
        ByteBuf out = copyFor(chunk, at, alloc, query, parsed);
        int end = at + length(chunk, at);
        for (int i = at + HEADER + wireLength(chunk, at); i < end; i += 2) {
            out.setInt((char) CHAR.get(chunk, i), STALE_TTL);
        }
        return out;
    }

    /** The question's name, for logs and tests. */
    static String name(byte[] chunk, int at) {
        return Question.toString(chunk, at + HEADER + Header.LENGTH);
    }

    private static int wireLength(byte[] chunk, int at) {
        return (char) CHAR.get(chunk, at + WIRE_LENGTH);
    }

    private static int questionLength(byte[] chunk, int at) {
        return (char) CHAR.get(chunk, at + QUESTION_LENGTH);
    }

    private static ByteBuf copyFor(byte[] chunk, int at, ByteBufAllocator alloc, ByteBuf query, Message parsed) {
        int wireLength = wireLength(chunk, at);
        ByteBuf out = alloc.directBuffer(wireLength).writeBytes(chunk, at + HEADER, wireLength);
        addressTo(out, questionLength(chunk, at) - 4, query, parsed);
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
}
