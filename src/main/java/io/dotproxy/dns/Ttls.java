package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;

/**
 * The time-to-live fields of a message's resource records, found by walking its records without
 * decoding them: what a cache needs to know how long it may keep an answer (RFC 1035 §3.2.1,
 * RFC 2308 §5) and to age it when it serves it again.
 *
 * <p>The OPT record is skipped everywhere: its TTL field holds EDNS flags, not a time (RFC 6891 §6.1.3).
 */
public final class Ttls {
    private static final int RR_FIXED = 10; // type, class, TTL, RDLENGTH
    private static final int SOA_TAIL = 20; // serial, refresh, retry, expire, minimum (RFC 1035 §3.3.13)
    private static final long MAX_TTL = 0x7FFFFFFFL; // a TTL with the top bit set counts as zero (RFC 2181 §8)

    private Ttls() {}

    /**
     * The TTL fields of one message.
     *
     * @param offsets index of each record's TTL field, counted from the message's first octet
     * @param smallest the smallest TTL of all those records, or -1 when there is none
     * @param negative for a negative answer, min(SOA TTL, SOA MINIMUM) of the first SOA record in
     *     the authority section (RFC 2308 §5); -1 when that section holds no SOA record
     */
    public record Scan(int[] offsets, long smallest, long negative) {}

    /**
     * Walks every record of {@code message}, whose view is {@code parsed}.
     *
     * @throws WireFormatException if the records do not frame as the view says (a view of another
     *     message, say)
     */
    public static Scan scan(ByteBuf message, Message parsed) throws WireFormatException {
        int start = parsed.start();
        int end = start + parsed.length();
        int answers = Header.ancount(message, start);
        int authority = Header.nscount(message, start);
        int records = answers + authority + Header.arcount(message, start);
        int[] offsets = new int[records - (parsed.hasOpt() ? 1 : 0)];
        int found = 0;
        long smallest = -1;
        long negative = -1;
        int pos = parsed.questionEnd();
        for (int q = 1; q < parsed.questionCount(); q++) {
            pos = Names.skip(message, start, pos, end) + 4;
        }
        for (int i = 0; i < records; i++) {
            int typeAt = Names.skip(message, start, pos, end);
            if (typeAt + RR_FIXED > end) {
                throw new WireFormatException("record runs past the end of the message");
            }
            int type = message.getUnsignedShort(typeAt);
            int rdStart = typeAt + RR_FIXED;
            int rdEnd = rdStart + message.getUnsignedShort(typeAt + 8);
            if (rdEnd > end) {
                throw new WireFormatException("record data runs past the end of the message");
            }
            if (type != RrType.OPT) {
                if (found == offsets.length) {
                    throw new WireFormatException("more records than the view counted");
                }
                long ttl = read(message, typeAt + 4);
                offsets[found++] = typeAt + 4 - start;
                smallest = smallest < 0 ? ttl : Math.min(smallest, ttl);
                boolean inAuthority = i >= answers && i < answers + authority;
                if (type == RrType.SOA && inAuthority && negative < 0 && rdEnd - rdStart >= SOA_TAIL) {
                    negative = Math.min(ttl, read(message, rdEnd - 4));
                }
            }
            pos = rdEnd;
        }
        if (found != offsets.length) {
            throw new WireFormatException("fewer records than the view counted");
        }
        return new Scan(offsets, smallest, negative);
    }

    /** The TTL in the four octets at {@code index}: a value with the top bit set counts as zero (RFC 2181 §8). */
    public static long read(ByteBuf message, int index) {
        long field = message.getUnsignedInt(index);
        return field > MAX_TTL ? 0 : field;
    }
}
