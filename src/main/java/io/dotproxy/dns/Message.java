package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;

/**
 * A read-only view of the parts of a DNS message a proxy needs: the header, the first question and
 * the EDNS(0) OPT record (RFC 6891). Resource records are walked to check their framing and to
 * find the OPT record, never decoded: a proxy passes answers through as bytes.
 *
 * <p>The view records indexes into the buffer it was parsed from; it does not hold the buffer.
 */
public final class Message {
    /** Smallest UDP payload every client accepts (RFC 1035 §4.2.1). */
    public static final int MIN_UDP_PAYLOAD = 512;

    private static final int RR_FIXED = 10; // type, class, TTL, RDLENGTH
    private static final int DO_BIT = 0x8000;

    private final int start;
    private final int end;
    private final int flags;
    private final int questionCount;
    private final int questionEnd;
    private final int qtype;
    private final int qclass;
    private final int optStart;
    private final int optEnd;
    private final int optPayloadSize;
    private final long optTtl;

    private Message(int start, int end, int flags, int questionCount, int questionEnd, int qtype,
                    int qclass, int optStart, int optEnd, int optPayloadSize, long optTtl) {
        this.start = start;
        this.end = end;
        this.flags = flags;
        this.questionCount = questionCount;
        this.questionEnd = questionEnd;
        this.qtype = qtype;
        this.qclass = qclass;
        this.optStart = optStart;
        this.optEnd = optEnd;
        this.optPayloadSize = optPayloadSize;
        this.optTtl = optTtl;
    }

    /**
     * Parses the readable bytes of {@code buf} as one message.
     *
     * @throws WireFormatException if anything past the header is malformed: a bad name, a record
     *     past the end, counts that disagree with the data, trailing octets, or a second OPT record
     */
    public static Message parse(ByteBuf buf) throws WireFormatException {
        int start = buf.readerIndex();
        int end = buf.writerIndex();
        if (end - start < Header.LENGTH) {
            throw new WireFormatException("shorter than a header");
        }
        int qd = Header.qdcount(buf, start);
        int records = Header.ancount(buf, start) + Header.nscount(buf, start);
        int additional = Header.arcount(buf, start);

        int pos = start + Header.LENGTH;
        int questionEnd = pos;
        int qtype = -1;
        int qclass = -1;
        for (int i = 0; i < qd; i++) {
            pos = Names.skip(buf, start, pos, end);
            if (pos + 4 > end) {
                throw new WireFormatException("question runs past the end of the message");
            }
            if (i == 0) {
                qtype = buf.getUnsignedShort(pos);
                qclass = buf.getUnsignedShort(pos + 2);
                questionEnd = pos + 4;
            }
            pos += 4;
        }
        for (int i = 0; i < records; i++) {
            pos = skipRecord(buf, start, pos, end);
        }
        int optStart = -1;
        int optEnd = -1;
        int optPayload = 0;
        long optTtl = 0;
        for (int i = 0; i < additional; i++) {
            int recordStart = pos;
            int nameEnd = Names.skip(buf, start, pos, end);
            pos = skipRecord(buf, start, pos, end);
            if (buf.getUnsignedShort(nameEnd) == RrType.OPT) {
                if (optStart >= 0) {
                    throw new WireFormatException("more than one OPT record"); // RFC 6891 §6.1.1
                }
                if (nameEnd != recordStart + 1) {
                    throw new WireFormatException("OPT record owner is not the root");
                }
                optStart = recordStart;
                optEnd = pos;
                optPayload = buf.getUnsignedShort(nameEnd + 2);
                optTtl = buf.getUnsignedInt(nameEnd + 4);
            }
        }
        if (pos != end) {
            throw new WireFormatException((end - pos) + " octets after the last record");
        }
        return new Message(start, end, Header.flags(buf, start), qd, questionEnd, qtype, qclass,
                optStart, optEnd, optPayload, optTtl);
    }

    /**
     * This view moved to a copy of the message that starts at index {@code newStart} of another
     * buffer: every index shifts by the same amount, nothing is parsed again.
     */
    public Message movedTo(int newStart) {
        int shift = newStart - start;
        return new Message(newStart, end + shift, flags, questionCount, questionEnd + shift, qtype, qclass,
                optStart < 0 ? -1 : optStart + shift, optEnd < 0 ? -1 : optEnd + shift, optPayloadSize, optTtl);
    }

    private static int skipRecord(ByteBuf buf, int start, int pos, int end) throws WireFormatException {
        pos = Names.skip(buf, start, pos, end);
        if (pos + RR_FIXED > end) {
            throw new WireFormatException("record runs past the end of the message");
        }
        int rdEnd = pos + RR_FIXED + buf.getUnsignedShort(pos + 8);
        if (rdEnd > end) {
            throw new WireFormatException("record data runs past the end of the message");
        }
        return rdEnd;
    }

    /** Index of the first header octet in the buffer this view was parsed from. */
    public int start() {
        return start;
    }

    /** Octets in the whole message. */
    public int length() {
        return end - start;
    }

    public int flags() {
        return flags;
    }

    public boolean isResponse() {
        return (flags & Header.FLAG_QR) != 0;
    }

    public int opcode() {
        return Header.opcode(flags);
    }

    /** The full 12-bit response code: the header's four bits extended by the OPT record. */
    public int rcode() {
        return (int) ((optTtl >>> 24) << 4) | Header.rcode(flags);
    }

    public int questionCount() {
        return questionCount;
    }

    /** Index of the first question's name; the question runs to {@link #questionEnd()}. */
    public int questionStart() {
        return start + Header.LENGTH;
    }

    /** Index just past the first question (equal to the question start when there is none). */
    public int questionEnd() {
        return questionEnd;
    }

    /** Type of the first question, or -1 when there is none. */
    public int qtype() {
        return qtype;
    }

    /** Class of the first question, or -1 when there is none. */
    public int qclass() {
        return qclass;
    }

    public boolean hasOpt() {
        return optStart >= 0;
    }

    /** Index of the OPT record's owner name, or -1 without EDNS. */
    public int optStart() {
        return optStart;
    }

    /** Index just past the OPT record's data, or -1 without EDNS. */
    public int optEnd() {
        return optEnd;
    }

    /** The EDNS version the sender speaks (RFC 6891 §6.1.3); meaningful only with an OPT record. */
    public int ednsVersion() {
        return (int) ((optTtl >>> 16) & 0xFF);
    }

    /** The DNSSEC OK bit (RFC 3225). */
    public boolean dnssecOk() {
        return (optTtl & DO_BIT) != 0;
    }

    /**
     * The largest UDP answer the sender of this query accepts: its advertised EDNS payload size,
     * where values below 512 count as 512 (RFC 6891 §6.2.5), and 512 without EDNS.
     */
    public int udpPayloadLimit() {
        return hasOpt() ? Math.max(MIN_UDP_PAYLOAD, optPayloadSize) : MIN_UDP_PAYLOAD;
    }

    /**
     * Whether two messages ask the same single question: the name matches case-insensitively
     * (RFC 4343) and type and class are equal. Each message is given as the index of its first
     * header octet and the index just past its end; either may be malformed (then: false).
     */
    public static boolean sameQuestion(ByteBuf a, int aStart, int aEnd, ByteBuf b, int bStart, int bEnd) {
        if (aEnd - aStart < Header.LENGTH || bEnd - bStart < Header.LENGTH
                || Header.qdcount(a, aStart) != 1 || Header.qdcount(b, bStart) != 1) {
            return false;
        }
        try {
            int aPos = Names.skip(a, aStart, aStart + Header.LENGTH, aEnd);
            int bPos = Names.skip(b, bStart, bStart + Header.LENGTH, bEnd);
            return aPos + 4 <= aEnd && bPos + 4 <= bEnd
                    && a.getInt(aPos) == b.getInt(bPos) // type and class
                    && Names.equalsIgnoreCase(a, aStart, aStart + Header.LENGTH, aEnd,
                            b, bStart, bStart + Header.LENGTH, bEnd);
        } catch (WireFormatException e) {
            return false;
        }
    }
}
