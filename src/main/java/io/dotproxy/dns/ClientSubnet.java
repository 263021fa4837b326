package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;

/**
 * The EDNS Client Subnet option (RFC 7871): finding it in a message's OPT record, and copying a
 * message without it, so that the addresses of pods and nodes never reach a public resolver.
 *
 * <p>Only the OPT record's options are walked; a message without ECS costs that walk and nothing
 * else. An option list that is malformed (an option running past the OPT data, or octets left
 * over) counts as holding no ECS, so the message is passed on as it came: {@link Message#parse}
 * checks the framing of records, not of options, and a proxy does not repair what a client sent.
 */
public final class ClientSubnet {
    /** The option code of ECS (RFC 7871 §6). */
    public static final int OPTION_CODE = 8;

    private static final int OPTION_HEADER = 4; // OPTION-CODE, OPTION-LENGTH
    private static final int OPT_FIXED = 11; // root owner, type, class, TTL, RDLENGTH

    private ClientSubnet() {}

    /**
     * Whether the OPT record of {@code message} holds at least one ECS option in a well-formed
     * option list; false without EDNS.
     */
    public static boolean present(ByteBuf message, Message parsed) {
        if (!parsed.hasOpt()) {
            return false;
        }
        int pos = parsed.optStart() + OPT_FIXED;
        int end = parsed.optEnd();
        boolean found = false;
        while (pos + OPTION_HEADER <= end) {
            found |= message.getUnsignedShort(pos) == OPTION_CODE;
            pos += OPTION_HEADER + message.getUnsignedShort(pos + 2);
        }
        return found && pos == end; // an option past the data, or a stray octet: malformed, leave it
    }

    /**
     * Writes {@code message} to {@code out} without its ECS options, every one of them, with the
     * OPT record's RDLENGTH fixed; every other octet (header, records, other options and their
     * order, records after OPT) as it was. Call it only when {@link #present} is true; {@code
     * out} needs room for {@code parsed.length()} octets at most.
     *
     * @return the octets written
     */
    public static int writeWithout(ByteBuf out, ByteBuf message, Message parsed) {
        int outStart = out.writerIndex();
        int optData = parsed.optStart() + OPT_FIXED;
        int optEnd = parsed.optEnd();
        out.writeBytes(message, parsed.start(), optData - parsed.start());
        int rdLength = out.writerIndex() - 2;
        int kept = 0;
        int pos = optData;
        while (pos < optEnd) {
            int size = OPTION_HEADER + message.getUnsignedShort(pos + 2);
            if (message.getUnsignedShort(pos) != OPTION_CODE) {
                out.writeBytes(message, pos, size);
                kept += size;
            }
            pos += size;
        }
        out.setShort(rdLength, kept);
        // records after OPT (a TSIG must stay last, RFC 8945 §5.1) keep their place
        out.writeBytes(message, optEnd, parsed.start() + parsed.length() - optEnd);
        return out.writerIndex() - outStart;
    }
}
