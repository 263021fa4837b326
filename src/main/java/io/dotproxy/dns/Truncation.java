package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * Fits answers into a UDP client's payload limit (RFC 1035 §4.2.1, RFC 6891 §6.2.5).
 *
 * <p>An answer that does not fit is cut to its header, question and OPT record, with TC=1 and no
 * records, as unbound and dnsdist do: a client that sees TC retries over TCP (RFC 7766 §5) and
 * gets everything, and a partial answer would only tempt resolvers to use an incomplete RRset.
 */
public final class Truncation {
    private Truncation() {}

    /**
     * Returns {@code answer} itself when it is at most {@code limit} octets; otherwise a new,
     * truncated answer, and {@code answer} is released.
     *
     * @throws WireFormatException if the answer is too long and cannot be parsed to be cut down;
     *     {@code answer} is released then too
     */
    public static ByteBuf fit(ByteBufAllocator alloc, ByteBuf answer, int limit) throws WireFormatException {
        if (answer.readableBytes() <= limit) {
            return answer;
        }
        try {
            Message parsed = Message.parse(answer);
            // Keep the answer's flags, extended rcode, version and DO bit; drop options, which may be large.
            int optTtl = parsed.hasOpt() ? answer.getInt(parsed.optStart() + 5) : 0; // past owner, type, class
            return Replies.withoutRecords(alloc, answer, parsed, parsed.flags() | Header.FLAG_TC, optTtl, null, null);
        } finally {
            answer.release();
        }
    }
}
