package io.dotproxy.upstream;

import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ImmediateEventExecutor;

/**
 * A place DNS queries can be sent: one resolver, or a group of them with a policy.
 *
 * <p>Contract: {@link #query} may be called from any thread and never blocks. It does not take
 * ownership of {@code query} and does not change it; the caller keeps the buffer readable and
 * unchanged until the callback has been called. The callback is called exactly once, with the
 * answer (its ID set back to the query's own) or a failure, no later than shortly after
 * {@code deadlineNanos} (a {@link System#nanoTime()} value).
 */
public interface Upstream extends AutoCloseable {
    /**
     * Sends one query.
     *
     * @param query the query message, from its reader index to its writer index
     * @param parsed the view of {@code query}; it has exactly one question
     */
    void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback);

    /**
     * Prepares for the first query without waiting for it, e.g. by opening a connection; a
     * failure here only shows in logs and meters. Nothing to do where nothing persists.
     *
     * @return done once the preparation has settled, whether it succeeded or not (a reload waits
     *     for it before it sends queries here); it never fails
     */
    default Future<Void> connectAhead() {
        return ImmediateEventExecutor.INSTANCE.newSucceededFuture(null);
    }

    /** A short stable name for logs and metric tags, such as {@code 1.1.1.1:853#cloudflare-dns.com}. */
    String name();

    /** Closes connections; queries in flight fail. */
    @Override
    void close();
}
