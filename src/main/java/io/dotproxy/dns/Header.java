package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;

/**
 * The fixed 12-octet DNS header (RFC 1035 §4.1.1), read and patched in place.
 *
 * <p>Every method takes the buffer and the index where the message starts, so a message can sit
 * anywhere in a buffer (after a TCP length prefix, say) without being copied.
 */
public final class Header {
    /** Octets in a header. */
    public static final int LENGTH = 12;

    public static final int FLAG_QR = 0x8000;
    public static final int FLAG_AA = 0x0400;
    public static final int FLAG_TC = 0x0200;
    public static final int FLAG_RD = 0x0100;
    public static final int FLAG_RA = 0x0080;
    public static final int FLAG_AD = 0x0020;
    public static final int FLAG_CD = 0x0010;
    /** The four opcode bits of the flags word. */
    public static final int OPCODE_MASK = 0x7800;
    public static final int OPCODE_QUERY = 0;

    private static final int FLAGS = 2;
    private static final int QDCOUNT = 4;
    private static final int ANCOUNT = 6;
    private static final int NSCOUNT = 8;
    private static final int ARCOUNT = 10;

    private Header() {}

    public static int id(ByteBuf buf, int start) {
        return buf.getUnsignedShort(start);
    }

    public static void setId(ByteBuf buf, int start, int id) {
        buf.setShort(start, id);
    }

    public static int flags(ByteBuf buf, int start) {
        return buf.getUnsignedShort(start + FLAGS);
    }

    public static void setFlags(ByteBuf buf, int start, int flags) {
        buf.setShort(start + FLAGS, flags);
    }

    public static boolean isResponse(ByteBuf buf, int start) {
        return (flags(buf, start) & FLAG_QR) != 0;
    }

    public static int opcode(int flags) {
        return (flags & OPCODE_MASK) >>> 11;
    }

    /** The low four bits of the response code; EDNS extends them with the OPT record's TTL. */
    public static int rcode(int flags) {
        return flags & 0xF;
    }

    public static int qdcount(ByteBuf buf, int start) {
        return buf.getUnsignedShort(start + QDCOUNT);
    }

    public static int ancount(ByteBuf buf, int start) {
        return buf.getUnsignedShort(start + ANCOUNT);
    }

    public static int nscount(ByteBuf buf, int start) {
        return buf.getUnsignedShort(start + NSCOUNT);
    }

    public static int arcount(ByteBuf buf, int start) {
        return buf.getUnsignedShort(start + ARCOUNT);
    }

    /** Writes a whole header at the writer index. */
    public static void write(ByteBuf out, int id, int flags, int qd, int an, int ns, int ar) {
        out.writeShort(id).writeShort(flags).writeShort(qd).writeShort(an).writeShort(ns).writeShort(ar);
    }
}
