package io.dotproxy.upstream;

import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import java.util.List;

/**
 * Several upstreams tried in order of preference: a query that fails fast on one (no connection,
 * bad certificate, broken connection, overload) moves to the next while its deadline allows. A
 * timeout ends the query, because its deadline is spent.
 *
 * <p>This is the failover seam; selection policies and health tracking build on it.
 */
public final class Upstreams implements Upstream {
    private final List<Upstream> members;

    public Upstreams(List<Upstream> members) {
        if (members.isEmpty()) {
            throw new IllegalArgumentException("no upstream");
        }
        this.members = List.copyOf(members);
    }

    @Override
    public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
        if (members.size() == 1) {
            members.get(0).query(query, parsed, deadlineNanos, callback);
        } else {
            new Attempts(query, parsed, deadlineNanos, callback).next();
        }
    }

    @Override
    public String name() {
        return "group";
    }

    @Override
    public void close() {
        members.forEach(Upstream::close);
    }

    /** Walks the members for one query. */
    private final class Attempts implements QueryCallback {
        private final ByteBuf query;
        private final Message parsed;
        private final long deadlineNanos;
        private final QueryCallback callback;
        private int index = -1;

        Attempts(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
            this.query = query;
            this.parsed = parsed;
            this.deadlineNanos = deadlineNanos;
            this.callback = callback;
        }

        void next() {
            index++;
            members.get(index).query(query, parsed, deadlineNanos, this);
        }

        @Override
        public void onAnswer(ByteBuf answer) {
            callback.onAnswer(answer);
        }

        @Override
        public void onFailure(UpstreamFailure failure) {
            boolean timeLeft = System.nanoTime() - deadlineNanos < 0;
            if (failure != UpstreamFailure.TIMEOUT && timeLeft && index + 1 < members.size()) {
                next();
            } else {
                callback.onFailure(failure);
            }
        }
    }
}
