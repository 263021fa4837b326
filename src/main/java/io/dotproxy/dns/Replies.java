package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;

/**
 * Builds the answers the proxy gives on its own: SERVFAIL, REFUSED, NOTIMP and FORMERR, with an
 * Extended DNS Error (RFC 8914) for clients that speak EDNS. {@link Truncation} builds its TC=1
 * answers with the same code.
 *
 * <p>The header flags of an error answer, for every opcode: QR set, the query's opcode, the low
 * four bits of the rcode, AA, TC, AD and Z clear; for opcode QUERY also the query's RD and CD, and
 * RA set. RD, RA, AD and CD are defined for QUERY only: in other opcodes these bits are clear.
 */
public final class Replies {
    /**
     * The EDNS payload size the proxy advertises in its own answers: the DNS Flag Day 2020 value,
     * which avoids IP fragmentation on common paths.
     */
    public static final int EDNS_PAYLOAD = 1232;

    private static final int OPT_FIXED = 11; // root owner, type, class, TTL, RDLENGTH
    private static final int OPTION_EDE = 15; // RFC 8914 §2
    private static final int EDE_FIXED = 6; // OPTION-CODE, OPTION-LENGTH, INFO-CODE
    // The longest first question Message.parse takes: 254 octets of labels ended by a 2-octet
    // compression pointer, one octet more than the longest name (RFC 1035 §2.3.4), then type and class.
    private static final int MAX_QUESTION = Names.MAX_WIRE_LENGTH + 1 + 4;
    private static final int MAX_RCODE = 0xFFF; // 4 header bits and 8 in the OPT record (RFC 6891 §6.1.3)
    private static final int DO_BIT = 0x8000;
    private static final int MAX_MESSAGE = 0xFFFF; // what a TCP length prefix can say

    /**
     * Most octets of EXTRA-TEXT an error answer carries; longer text is cut at a character
     * boundary. RFC 8914 §3 asks for short text so that EDE does not cause truncation: with this
     * bound an error answer to any question still fits the 512 octets every client accepts.
     */
    public static final int MAX_EXTRA_TEXT =
            Message.MIN_UDP_PAYLOAD - Header.LENGTH - MAX_QUESTION - OPT_FIXED - EDE_FIXED;

    private Replies() {}

    /**
     * An answer with {@code rcode} to a query that parsed: the query's ID and first question (name
     * case kept), header flags as the class comment says, no records, and, when the query has an OPT
     * record, an OPT record with our payload size, version 0, the query's DO bit and one EDE
     * option; a query without EDNS gets no OPT and so no EDE (RFC 6891 §7).
     *
     * @param parsed the view of {@code query}
     * @param rcode the response code, 0 to 4095; above 15 only for a query with EDNS, whose OPT
     *     record carries the upper eight bits
     * @param ede the reason for the rcode, or null for no EDE option
     * @param extraText text for a human reader, or null or empty for none; cut to
     *     {@link #MAX_EXTRA_TEXT} octets of UTF-8
     * @throws IllegalArgumentException for an rcode out of range, or above 15 without EDNS
     */
    public static ByteBuf error(ByteBufAllocator alloc, ByteBuf query, Message parsed, int rcode,
                               ExtendedError ede, String extraText) {
        if (rcode < 0 || rcode > MAX_RCODE || (rcode > 0xF && !parsed.hasOpt())) {
            throw new IllegalArgumentException("rcode " + rcode + (parsed.hasOpt() ? "" : " without EDNS"));
        }
        // Extended rcode, version 0, DO copied from the query (RFC 3225 §3).
        int optTtl = (rcode >>> 4) << 24 | (parsed.dnssecOk() ? DO_BIT : 0);
        return withoutRecords(alloc, query, parsed, errorFlags(parsed.flags(), rcode), optTtl, ede, extraText);
    }

    /**
     * FORMERR for a query whose header parsed but whose body did not: the header alone, with all
     * counts zero, since nothing after it can be trusted (RFC 1035 §4.1.1), and flags as the
     * class comment says. {@code query} must have at least {@link Header#LENGTH} readable octets.
     */
    public static ByteBuf formatError(ByteBufAllocator alloc, ByteBuf query) {
        int start = query.readerIndex();
        ByteBuf out = alloc.buffer(Header.LENGTH);
        Header.write(out, Header.id(query, start), errorFlags(Header.flags(query, start), Rcode.FORMERR),
                0, 0, 0, 0);
        return out;
    }

    /**
     * An empty answer with TC=1 to a query that parsed (a rate limiter's "slip"): NOERROR, no
     * records, flags as for an error answer plus TC, so that a real client retries over TCP
     * (RFC 7766 §5) while a spoofed source gets no more octets than it sent; the OPT record as
     * {@link #error} writes it, without an option.
     */
    public static ByteBuf truncated(ByteBufAllocator alloc, ByteBuf query, Message parsed) {
        int optTtl = parsed.dnssecOk() ? DO_BIT : 0;
        return withoutRecords(alloc, query, parsed, errorFlags(parsed.flags(), Rcode.NOERROR) | Header.FLAG_TC, optTtl,
                null, null);
    }

    /**
     * A copy of {@code answer} whose OPT record carries one more option, an Extended DNS Error
     * without text (a cached answer served stale, RFC 8767 §4 and RFC 8914 §4.4); the OPT record
     * keeps its place and its other options. An answer without OPT is copied as it is: a client
     * that sent no EDNS gets none (RFC 6891 §7). {@code answer} is not changed or released.
     *
     * @param parsed the view of {@code answer}
     */
    public static ByteBuf withExtendedError(ByteBufAllocator alloc, ByteBuf answer, Message parsed, ExtendedError ede) {
        int start = parsed.start();
        int end = start + parsed.length();
        if (!parsed.hasOpt() || parsed.length() + EDE_FIXED > MAX_MESSAGE) {
            return alloc.buffer(parsed.length()).writeBytes(answer, start, parsed.length());
        }
        int rdLengthAt = parsed.optStart() + OPT_FIXED - 2;
        ByteBuf out = alloc.buffer(parsed.length() + EDE_FIXED);
        out.writeBytes(answer, start, parsed.optEnd() - start);
        out.writeShort(OPTION_EDE).writeShort(2).writeShort(ede.code());
        out.writeBytes(answer, parsed.optEnd(), end - parsed.optEnd());
        out.setShort(rdLengthAt - start, answer.getUnsignedShort(rdLengthAt) + EDE_FIXED);
        return out;
    }

    /** The header flags of every error answer: the one place the rule of the class comment lives. */
    private static int errorFlags(int queryFlags, int rcode) {
        // Opcode copied, Z zero (RFC 1035 §4.1.1); AA clear: the proxy is no authority; TC clear:
        // nothing is cut; AD clear: no data, so none validated (RFC 6840 §5.8).
        int flags = Header.FLAG_QR | (queryFlags & Header.OPCODE_MASK) | (rcode & 0xF);
        if (Header.opcode(queryFlags) != Header.OPCODE_QUERY) {
            // RD, RA, AD and CD are QUERY's bits; other opcodes have Z there (RFC 2136 §2.2 for
            // UPDATE), and an unknown opcode defines nothing past the header (RFC 8906 §3.1.4).
            return flags;
        }
        // RD copied (RFC 1035 §4.1.1), CD copied (RFC 4035 §3.2.2), RA set: the proxy recurses.
        return flags | (queryFlags & (Header.FLAG_RD | Header.FLAG_CD)) | Header.FLAG_RA;
    }

    /**
     * An answer without records, the shape of both error and truncated answers: a header with
     * {@code source}'s ID and {@code flags}, {@code source}'s first question copied as it is, and,
     * only when {@code source} has an OPT record, an OPT record with our payload size and
     * {@code optTtl} (extended rcode, version, DO and the other EDNS flags) that holds one EDE option
     * if {@code ede} is not null.
     */
    static ByteBuf withoutRecords(ByteBufAllocator alloc, ByteBuf source, Message parsed, int flags,
                                  int optTtl, ExtendedError ede, String extraText) {
        boolean opt = parsed.hasOpt();
        boolean withEde = opt && ede != null;
        int textEnd = withEde && extraText != null ? textEnd(extraText) : 0;
        int textLength = textEnd == 0 ? 0 : ByteBufUtil.utf8Bytes(extraText, 0, textEnd);
        int questionLength = parsed.questionEnd() - parsed.questionStart();
        int optLength = opt ? OPT_FIXED + (withEde ? EDE_FIXED + textLength : 0) : 0;

        ByteBuf out = alloc.buffer(Header.LENGTH + questionLength + optLength);
        Header.write(out, Header.id(source, parsed.start()), flags,
                parsed.questionCount() > 0 ? 1 : 0, 0, 0, opt ? 1 : 0);
        out.writeBytes(source, parsed.questionStart(), questionLength);
        if (opt) {
            out.writeByte(0).writeShort(RrType.OPT).writeShort(EDNS_PAYLOAD).writeInt(optTtl)
                    .writeShort(optLength - OPT_FIXED);
            if (withEde) {
                // OPTION-LENGTH counts INFO-CODE and EXTRA-TEXT (RFC 8914 §2).
                out.writeShort(OPTION_EDE).writeShort(2 + textLength).writeShort(ede.code());
                if (textEnd > 0) {
                    ByteBufUtil.writeUtf8(out, extraText, 0, textEnd);
                }
            }
        }
        return out;
    }

    /**
     * The index in {@code text} where its longest prefix of at most {@link #MAX_EXTRA_TEXT} octets
     * of UTF-8 ends, so that no character is split.
     */
    private static int textEnd(String text) {
        int octets = 0;
        int end = 0;
        while (end < text.length()) {
            int c = text.codePointAt(end);
            int n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; // a lone surrogate counts 3, written as '?'
            if (octets + n > MAX_EXTRA_TEXT) {
                break;
            }
            octets += n;
            end += Character.charCount(c);
        }
        return end;
    }
}
