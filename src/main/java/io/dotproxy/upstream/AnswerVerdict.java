package io.dotproxy.upstream;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;

/**
 * Whether a message from an upstream answers a given query: a response with the query's ID and
 * question (RFC 5452 §9.1). One rule for the DoT connections and the plain fallback; each
 * counts the verdicts its own way.
 */
enum AnswerVerdict {
    /** Too short for a header, or not a response. */
    MALFORMED,
    /** A response to another query: another ID or another question. */
    MISMATCH,
    /** The answer to the query. */
    MATCH;

    /** Whether {@code answer}, from its reader index, is long enough for a header and a response. */
    static boolean isResponse(ByteBuf answer) {
        return answer.readableBytes() >= Header.LENGTH && Header.isResponse(answer, answer.readerIndex());
    }

    /**
     * Judges {@code answer} (from its reader index to its writer index) against the query message
     * in {@code query} from {@code start} to {@code end}.
     *
     * @param errorMayOmitQuestion whether an error answer with no question matches on its ID alone:
     *        FORMERR, NOTIMP and the like may omit it
     */
    static AnswerVerdict of(ByteBuf query, int start, int end, ByteBuf answer, boolean errorMayOmitQuestion) {
        if (!isResponse(answer)) {
            return MALFORMED;
        }
        int at = answer.readerIndex();
        if (Header.id(answer, at) != Header.id(query, start)) {
            return MISMATCH;
        }
        boolean errorWithoutQuestion = errorMayOmitQuestion && Header.qdcount(answer, at) == 0
                && Header.rcode(Header.flags(answer, at)) != 0;
        return errorWithoutQuestion || Message.sameQuestion(query, start, end, answer, at, answer.writerIndex())
                ? MATCH : MISMATCH;
    }
}
