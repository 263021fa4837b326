package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/** Builds the answers the proxy gives on its own: SERVFAIL, REFUSED, NOTIMP and FORMERR. */
public final class Replies {
    /**
     * The EDNS payload size the proxy advertises in its own answers: the DNS Flag Day 2020 value,
     * which avoids IP fragmentation on common paths.
     */
    public static final int EDNS_PAYLOAD = 1232;

    private static final int OPT_RECORD_LENGTH = 11;
    private static final int DO_BIT = 0x8000;

    private Replies() {}

    /**
     * An answer with {@code rcode} to a query that parsed: the client's ID, opcode, RD and CD, the
     * question, and an OPT record when the query had one (RFC 6891 §7).
     */
    public static ByteBuf error(ByteBufAllocator alloc, ByteBuf query, Message parsed, int rcode) {
        int questionLength = parsed.questionEnd() - parsed.questionStart();
        ByteBuf out = alloc.buffer(Header.LENGTH + questionLength + OPT_RECORD_LENGTH);
        int start = parsed.start();
        Header.write(out, Header.id(query, start), replyFlags(parsed.flags(), rcode),
                parsed.questionCount() > 0 ? 1 : 0, 0, 0, parsed.hasOpt() ? 1 : 0);
        out.writeBytes(query, parsed.questionStart(), questionLength);
        if (parsed.hasOpt()) {
            writeOpt(out, parsed.dnssecOk());
        }
        return out;
    }

    /**
     * FORMERR for a query whose header parsed but whose body did not: the header alone, with all
     * counts zero, since nothing after it can be trusted (RFC 1035 §4.1.1).
     */
    public static ByteBuf formatError(ByteBufAllocator alloc, ByteBuf query) {
        int start = query.readerIndex();
        ByteBuf out = alloc.buffer(Header.LENGTH);
        Header.write(out, Header.id(query, start), replyFlags(Header.flags(query, start), Rcode.FORMERR),
                0, 0, 0, 0);
        return out;
    }

    /** Writes a bare OPT record: root owner, our payload size, version 0, no options. */
    static void writeOpt(ByteBuf out, boolean dnssecOk) {
        out.writeByte(0);
        out.writeShort(RrType.OPT);
        out.writeShort(EDNS_PAYLOAD);
        out.writeInt(dnssecOk ? DO_BIT : 0); // extended rcode 0, version 0, DO echoed (RFC 3225 §3)
        out.writeShort(0);
    }

    private static int replyFlags(int queryFlags, int rcode) {
        int kept = queryFlags & (0x7800 | Header.FLAG_RD | Header.FLAG_CD); // opcode, RD, CD
        return Header.FLAG_QR | kept | Header.FLAG_RA | (rcode & 0xF);
    }
}
