package io.dotproxy.server;

import io.dotproxy.dns.Message;
import io.dotproxy.net.Transport;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.UpstreamFailure;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.net.InetSocketAddress;

/**
 * One client query on its way through the {@link QueryPipeline}, and the way back to that client.
 * A listener makes one per query; the pipeline completes it once, and {@link #complete} is the one
 * place its query buffer is released.
 */
abstract class Exchange implements QueryCallback {
    private QueryPipeline pipeline;
    private ByteBuf query;
    private Message parsed;
    private boolean completed;
    private boolean clientSubnetStripped;
    private boolean ownCopy; // the query is an exact-size buffer of this exchange's, not the one received

    abstract Transport transport();

    /** Who asked: the datagram's source, or the TCP connection's peer. */
    abstract InetSocketAddress client();

    abstract ByteBufAllocator alloc();

    /** Sends an answer to the client and takes ownership of it. */
    abstract void send(ByteBuf answer);

    /** The query gets no answer (it was dropped). */
    abstract void abandon();

    /** Takes the query as received; it is this exchange's to release from here on. */
    final void begin(QueryPipeline pipeline, ByteBuf received) {
        this.pipeline = pipeline;
        this.query = received;
    }

    /**
     * Replaces the query as received by an exact-size copy (its view moved along) and releases the
     * received buffer, unless the query is a copy of the exchange's own already. Called when the
     * query is forwarded, the only way it outlives {@link QueryPipeline#handle}: a UDP datagram is a
     * slice of a 32 KiB batch buffer and a TCP frame a slice of a whole read buffer, and held for
     * the query's lifetime they would pin far more memory than the query. A query answered at once
     * (a cache hit, an error, a drop) is never copied.
     */
    final void keepCopy() {
        if (ownCopy) {
            return;
        }
        ByteBuf received = query;
        int from = received.readerIndex();
        query = alloc().directBuffer(received.readableBytes()).writeBytes(received, from, received.readableBytes());
        ownCopy = true;
        if (parsed != null) {
            parsed = parsed.movedTo(0);
        }
        received.release();
    }

    /**
     * Replaces the query by a rewritten copy, with its view, and releases the query it had: the
     * copy is this exchange's to release from here on, in {@link #complete}.
     */
    final void rewriteQuery(ByteBuf rewritten, Message view) {
        ByteBuf previous = query;
        query = rewritten;
        parsed = view;
        ownCopy = true;
        previous.release();
    }

    /** Whether the client's ECS option was taken out of the query, so that the answer loses its own. */
    final boolean clientSubnetStripped() {
        return clientSubnetStripped;
    }

    final void clientSubnetStripped(boolean stripped) {
        clientSubnetStripped = stripped;
    }

    final ByteBuf query() {
        return query;
    }

    /** The view of the query, once the wire checks have parsed it; null before. */
    final Message parsed() {
        return parsed;
    }

    final void parsed(Message view) {
        parsed = view;
    }

    final boolean isComplete() {
        return completed;
    }

    /**
     * Ends the exchange: releases the query, then sends {@code answer}, or nothing when it is null.
     * A second call (only a bug could make one) releases its answer and changes nothing else.
     */
    final void complete(ByteBuf answer) {
        if (completed) {
            if (answer != null) {
                answer.release();
            }
            return;
        }
        completed = true;
        query.release();
        query = null;
        pipeline.settled();
        if (answer != null) {
            send(answer);
        } else {
            abandon();
        }
    }

    @Override
    public final void onAnswer(ByteBuf answer) {
        pipeline.answered(this, answer);
    }

    @Override
    public final void onFailure(UpstreamFailure failure) {
        pipeline.failed(this, failure);
    }
}
