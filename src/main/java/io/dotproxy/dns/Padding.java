package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;

/**
 * EDNS(0) padding (RFC 7830) of queries sent over TLS, to a multiple of 128 octets as RFC 8467
 * recommends for clients, so that message sizes say less about the names asked for.
 */
public final class Padding {
    /** The block size of RFC 8467 §4.1 for queries. */
    public static final int QUERY_BLOCK = 128;

    private static final int OPTION_PADDING = 12;
    private static final int OPTION_HEADER = 4;
    private static final int OPT_RDLENGTH = 9; // after the root owner, type, class and TTL

    private Padding() {}

    /** Octets {@link #writePadded} may add at most. */
    public static int maxGrowth(int block) {
        return OPTION_HEADER + block - 1;
    }

    /**
     * Writes {@code query} to {@code out}, padded to a multiple of {@code block} octets when it
     * has an OPT record that ends the message and carries no padding yet; otherwise unchanged
     * (without EDNS there is nowhere to put padding, and a record after OPT, such as TSIG, must
     * stay last).
     */
    public static void writePadded(ByteBuf out, ByteBuf query, Message parsed, int block) {
        int start = parsed.start();
        int length = parsed.length();
        int outStart = out.writerIndex();
        out.writeBytes(query, start, length);
        if (!parsed.hasOpt() || parsed.optEnd() != start + length || hasPadding(query, parsed)) {
            return;
        }
        int pad = (block - (length + OPTION_HEADER) % block) % block;
        int rdLength = outStart + (parsed.optStart() - start) + OPT_RDLENGTH;
        if (length + OPTION_HEADER + pad > 65535 || out.getUnsignedShort(rdLength) + OPTION_HEADER + pad > 65535) {
            return; // no room left in a DNS message: send it as it is
        }
        out.setShort(rdLength, out.getUnsignedShort(rdLength) + OPTION_HEADER + pad);
        out.writeShort(OPTION_PADDING).writeShort(pad).writeZero(pad);
    }

    private static boolean hasPadding(ByteBuf query, Message parsed) {
        int pos = parsed.optStart() + 1 + 10; // owner, type, class, TTL, RDLENGTH
        int end = parsed.optEnd();
        while (pos + OPTION_HEADER <= end) {
            if (query.getUnsignedShort(pos) == OPTION_PADDING) {
                return true;
            }
            pos += OPTION_HEADER + query.getUnsignedShort(pos + 2);
        }
        return false;
    }
}
