package io.dotproxy.upstream;

import io.netty.buffer.ByteBuf;

/**
 * Receives the outcome of one query sent to an {@link Upstream}: exactly one of the two methods is
 * called, exactly once, on some event-loop thread. Implementations must not block.
 */
public interface QueryCallback {
    /**
     * The upstream's answer, with the client's own message ID restored. The callee owns the
     * buffer and must release or pass it on. Its readable bytes are exactly the message.
     */
    void onAnswer(ByteBuf answer);

    /** No answer will come from this upstream. */
    void onFailure(UpstreamFailure failure);
}
