package io.dotproxy.cache;

import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * The pipeline's local-answer stage: answers a query without asking an upstream when it can (the
 * cache's fresh hits). {@link #NONE} answers nothing.
 *
 * <p>It runs on the event loop for every query and must never block. Answers are kept on their
 * way back from upstream, by {@link CachingUpstream}.
 */
public interface LocalAnswers {
    /** Answers nothing: every query is forwarded. */
    LocalAnswers NONE = new LocalAnswers() {
        @Override
        public ByteBuf answer(ByteBuf query, Message parsed, ByteBufAllocator alloc) {
            return null;
        }
    };

    /**
     * An answer to {@code query} with the query's ID, allocated from {@code alloc} and owned by the
     * caller (which fits it to the client's UDP size), or null to forward the query upstream.
     *
     * @param parsed the view of {@code query}: a well-formed QUERY with exactly one question
     */
    ByteBuf answer(ByteBuf query, Message parsed, ByteBufAllocator alloc);
}
