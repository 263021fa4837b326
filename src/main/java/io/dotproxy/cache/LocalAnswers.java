package io.dotproxy.cache;

import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * The pipeline's local-answer stage: answers a query without asking an upstream when it can (the
 * cache's seat), and sees every upstream answer on its way back to the client. {@link #NONE}
 * answers nothing and keeps nothing.
 *
 * <p>Both methods run on the event loop for every query and must never block.
 */
public interface LocalAnswers {
    /** Answers nothing: every query is forwarded. */
    LocalAnswers NONE = new LocalAnswers() {
        @Override
        public ByteBuf answer(ByteBuf query, Message parsed, ByteBufAllocator alloc) {
            return null;
        }

        @Override
        public void upstreamAnswered(ByteBuf query, Message parsed, ByteBuf answer) {}
    };

    /**
     * An answer to {@code query} with the query's ID, allocated from {@code alloc} and owned by the
     * caller (which fits it to the client's UDP size), or null to forward the query upstream.
     *
     * @param parsed the view of {@code query}: a well-formed QUERY with exactly one question
     */
    ByteBuf answer(ByteBuf query, Message parsed, ByteBufAllocator alloc);

    /**
     * An upstream's answer to {@code query}, before it is fitted to the client. The callee must
     * neither keep nor change {@code answer}: it copies what it wants to keep.
     */
    void upstreamAnswered(ByteBuf query, Message parsed, ByteBuf answer);
}
