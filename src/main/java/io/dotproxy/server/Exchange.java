package io.dotproxy.server;

import io.dotproxy.net.Transport;
import io.dotproxy.dns.Message;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.UpstreamFailure;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * One client query on its way through the {@link QueryPipeline}, and the way back to that client.
 * A listener makes one per query; the pipeline fills in the query and completes it exactly once.
 */
abstract class Exchange implements QueryCallback {
    private QueryPipeline pipeline;
    private ByteBuf query;
    private Message parsed;

    abstract Transport transport();

    abstract ByteBufAllocator alloc();

    /** Sends an answer to the client and takes ownership of it; callable from any thread. */
    abstract void send(ByteBuf answer);

    /** The query gets no answer (it was dropped); callable from any thread. */
    abstract void abandon();

    final void begin(QueryPipeline pipeline, ByteBuf query, Message parsed) {
        this.pipeline = pipeline;
        this.query = query;
        this.parsed = parsed;
    }

    final ByteBuf query() {
        return query;
    }

    final Message parsed() {
        return parsed;
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
