package io.dotproxy.upstream;

import io.netty.buffer.ByteBuf;

/**
 * One query on its way to a DoT upstream: its framed wire copy, who waits for it and until when.
 * Lives on the upstream's event loop only.
 */
final class InFlight {
    /** Offset of the message ID in {@link #wire}, after the 2-octet TCP length prefix. */
    static final int ID_OFFSET = 2;

    /** Length prefix and message, ready to write; the ID field is patched for each send. */
    final ByteBuf wire;
    final int clientId;
    final long deadlineNanos;
    private final QueryCallback callback;
    private final UpstreamMetrics metrics;

    int upstreamId;
    int sends;
    long sentAtNanos;
    /**
     * When this upstream's event loop first took the query: its attempt runs from here to the
     * deadline. Stamped by {@link #start} from a clock reading the caller makes anyway.
     */
    long startedNanos;
    private boolean started;
    private boolean done;

    InFlight(ByteBuf wire, int clientId, long deadlineNanos, QueryCallback callback, UpstreamMetrics metrics) {
        this.wire = wire;
        this.clientId = clientId;
        this.deadlineNanos = deadlineNanos;
        this.callback = callback;
        this.metrics = metrics;
    }

    /** Records the attempt's start on the first call; resends keep the first start. */
    void start(long nowNanos) {
        if (!started) {
            started = true;
            startedNanos = nowNanos;
        }
    }

    boolean isDone() {
        return done;
    }

    boolean expiredAt(long nowNanos) {
        return nowNanos - deadlineNanos >= 0;
    }

    /**
     * Fails a query whose deadline passed while it waited on our side. Never written: our own
     * backlog (OVERLOADED), which must not count against the upstream's health; written before
     * (and waiting for a resend): the upstream's TIMEOUT.
     */
    void expire() {
        fail(sends == 0 ? UpstreamFailure.OVERLOADED : UpstreamFailure.TIMEOUT);
    }

    void answer(ByteBuf answer, long nowNanos) {
        done = true;
        wire.release();
        metrics.settled();
        metrics.answered(nowNanos - sentAtNanos);
        callback.onAnswer(answer);
    }

    void fail(UpstreamFailure failure) {
        done = true;
        wire.release();
        metrics.settled();
        metrics.failed(failure);
        callback.onFailure(failure);
    }
}
