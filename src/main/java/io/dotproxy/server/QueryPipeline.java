package io.dotproxy.server;

import io.dotproxy.net.Transport;
import io.dotproxy.dns.ExtendedError;
import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Rcode;
import io.dotproxy.dns.Replies;
import io.dotproxy.dns.Truncation;
import io.dotproxy.dns.WireFormatException;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamFailure;
import io.netty.buffer.ByteBuf;
import java.time.Duration;

/**
 * The one path every query takes, whatever listener it came from: wire checks, then the
 * upstreams, then the way back (with truncation for UDP). Every query that has a readable header
 * gets exactly one answer: the upstream's, or an error of the proxy's own, counted by reason.
 *
 * <p>The guard (allow-list, rate limit) and the cache are later stages between the wire checks
 * and the upstreams, in {@link #handle}.
 */
public final class QueryPipeline {
    private final Upstream upstream;
    private final long timeoutNanos;
    private final int maxUdpPayload;
    private final ServerMetrics metrics;

    /**
     * @param timeout the deadline of each query, shared by every attempt upstream
     * @param maxUdpPayload largest UDP answer sent, whatever larger size a client advertises
     */
    public QueryPipeline(Upstream upstream, Duration timeout, int maxUdpPayload, ServerMetrics metrics) {
        this.upstream = upstream;
        this.timeoutNanos = timeout.toNanos();
        this.maxUdpPayload = maxUdpPayload;
        this.metrics = metrics;
    }

    /** Handles one query and takes ownership of its buffer (the message is its readable bytes). */
    void handle(ByteBuf query, Exchange exchange) {
        Transport transport = exchange.transport();
        metrics.query(transport);
        int start = query.readerIndex();
        if (query.readableBytes() < Header.LENGTH) {
            drop(query, exchange, ServerMetrics.Drop.SHORT);
            return;
        }
        if (Header.isResponse(query, start)) {
            drop(query, exchange, ServerMetrics.Drop.RESPONSE);
            return;
        }
        // Keep an exact-size copy for the query's lifetime and free the receive buffer now: a UDP
        // datagram is a slice of a 32 KiB batch buffer, a TCP frame a slice of a whole read buffer.
        ByteBuf received = query;
        query = exchange.alloc().directBuffer(received.readableBytes()).writeBytes(received);
        received.release();
        Message parsed;
        try {
            parsed = Message.parse(query);
        } catch (WireFormatException e) {
            reply(exchange, Replies.formatError(exchange.alloc(), query), ServerMetrics.ErrorReason.MALFORMED);
            query.release();
            return;
        }
        if (parsed.opcode() != Header.OPCODE_QUERY) {
            reply(exchange, Replies.error(exchange.alloc(), query, parsed, Rcode.NOTIMP, ExtendedError.NOT_SUPPORTED, null),
                    ServerMetrics.ErrorReason.OPCODE);
            query.release();
            return;
        }
        if (parsed.questionCount() != 1) { // RFC 9619: a query has exactly one question
            reply(exchange, Replies.error(exchange.alloc(), query, parsed, Rcode.FORMERR, ExtendedError.OTHER, "not one question"),
                    ServerMetrics.ErrorReason.MALFORMED);
            query.release();
            return;
        }
        exchange.begin(this, query, parsed);
        upstream.query(query, parsed, System.nanoTime() + timeoutNanos, exchange);
    }

    void answered(Exchange exchange, ByteBuf answer) {
        ByteBuf query = exchange.query();
        if (exchange.transport() == Transport.UDP) {
            int limit = Math.min(exchange.parsed().udpPayloadLimit(), maxUdpPayload);
            if (answer.readableBytes() > limit) {
                try {
                    answer = Truncation.fit(exchange.alloc(), answer, limit);
                    metrics.truncated();
                } catch (WireFormatException e) {
                    answer = Replies.error(exchange.alloc(), query, exchange.parsed(), Rcode.SERVFAIL,
                            ExtendedError.NETWORK_ERROR, null);
                    metrics.error(exchange.transport(), ServerMetrics.ErrorReason.UNTRUNCATABLE);
                }
            }
        }
        query.release();
        metrics.response(exchange.transport(), Header.rcode(Header.flags(answer, answer.readerIndex())));
        exchange.send(answer);
    }

    void failed(Exchange exchange, UpstreamFailure failure) {
        ByteBuf query = exchange.query();
        ByteBuf answer = Replies.error(exchange.alloc(), query, exchange.parsed(), Rcode.SERVFAIL,
                ExtendedError.NO_REACHABLE_AUTHORITY, null);
        query.release();
        reply(exchange, answer, ServerMetrics.ErrorReason.UPSTREAM);
    }

    private void reply(Exchange exchange, ByteBuf answer, ServerMetrics.ErrorReason error) {
        metrics.error(exchange.transport(), error);
        metrics.response(exchange.transport(), Header.rcode(Header.flags(answer, answer.readerIndex())));
        exchange.send(answer);
    }

    private void drop(ByteBuf query, Exchange exchange, ServerMetrics.Drop reason) {
        metrics.dropped(exchange.transport(), reason);
        query.release();
        exchange.abandon();
    }
}
