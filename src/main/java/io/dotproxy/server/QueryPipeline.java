package io.dotproxy.server;

import io.dotproxy.cache.LocalAnswers;
import io.dotproxy.dns.ClientSubnet;
import io.dotproxy.dns.ExtendedError;
import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Rcode;
import io.dotproxy.dns.Replies;
import io.dotproxy.dns.Truncation;
import io.dotproxy.dns.WireFormatException;
import io.dotproxy.guard.Admission;
import io.dotproxy.net.Transport;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamFailure;
import io.netty.buffer.ByteBuf;
import java.time.Duration;
import org.jboss.logging.Logger;

/**
 * The one path every query takes, whatever listener it came from, as explicit stages:
 * <ol>
 *   <li><b>admit</b>: who is asking ({@link Admission}: the guard's seat);
 *   <li><b>validate</b>: the wire checks (one well-formed QUERY with one question), then, when
 *       set, an admitted query loses its EDNS Client Subnet option (RFC 7871);
 *   <li><b>answer locally</b> when possible ({@link LocalAnswers}: the cache's seat);
 *   <li><b>forward</b> to the upstreams (with the cache on: {@link io.dotproxy.cache.CachingUpstream}
 *       in front of the upstream group, which coalesces, stores and serves stale);
 *   <li>and <b>the way back</b>: remove the upstream's ECS option when the query's was removed,
 *       fit the answer to a UDP client's size, count it, send it.
 * </ol>
 * Each stage answers, drops with a counted reason, or passes the query on. Every query that is not
 * dropped (too short for a header, a response, or dropped by admission) gets exactly one answer: an
 * upstream's, a local one, or an error of the proxy's own, counted by reason. {@link
 * Exchange#complete} releases the query, in one place for all paths.
 */
public final class QueryPipeline {
    /**
     * Per-query behaviour.
     *
     * @param timeout the deadline of each query, shared by every attempt upstream
     * @param maxUdpPayload largest UDP answer sent, whatever larger size a client advertises
     * @param maxInFlight queries in flight at most; a query beyond it that cannot be answered
     *     locally gets SERVFAIL at once, never a place in an unbounded queue
     * @param stripClientSubnet whether a client's EDNS Client Subnet option (RFC 7871) is removed
     *     before the query goes on, and the upstream's ECS option from the answer to it
     */
    public record Settings(Duration timeout, int maxUdpPayload, int maxInFlight, boolean stripClientSubnet) {}

    private static final Logger LOG = Logger.getLogger(QueryPipeline.class);

    // Replaced by reconfigure(), on the event loop, like everything the pipeline holds.
    private Admission admission;
    private LocalAnswers localAnswers; // with upstream, replaced by route(), on the event loop
    private Upstream upstream; // replaced by route(), on the event loop
    private long timeoutNanos;
    private int maxUdpPayload;
    private int maxInFlight;
    private boolean stripClientSubnet;
    private final ServerMetrics metrics;

    public QueryPipeline(Admission admission, LocalAnswers localAnswers, Upstream upstream, Settings settings,
                         ServerMetrics metrics) {
        this.localAnswers = localAnswers;
        this.upstream = upstream;
        this.metrics = metrics;
        reconfigure(admission, settings);
    }

    /**
     * From the next query on, queries are answered locally by {@code local} when it can, and go to
     * {@code next} otherwise (a reload turned the cache on or off, or changed the upstreams). Call
     * on the event loop.
     */
    public void route(LocalAnswers local, Upstream next) {
        localAnswers = local;
        upstream = next;
    }

    /**
     * From the next query on: this admission and these settings (a reload). Queries already past a
     * stage keep what that stage gave them (their deadline, say). Call on the event loop.
     */
    public void reconfigure(Admission admission, Settings settings) {
        this.admission = admission;
        this.timeoutNanos = settings.timeout().toNanos();
        this.maxUdpPayload = settings.maxUdpPayload();
        this.maxInFlight = settings.maxInFlight();
        this.stripClientSubnet = settings.stripClientSubnet();
    }

    /** Queries accepted and not yet answered or dropped, over every listener. */
    public int inFlight() {
        return metrics.inFlight();
    }

    /** Handles one query and takes ownership of its buffer (the message is its readable bytes). */
    void handle(ByteBuf received, Exchange exchange) {
        metrics.queryStarted(exchange.transport());
        exchange.begin(this, received);
        try {
            Admission.Verdict verdict = admit(exchange);
            if (verdict == Admission.Verdict.DROP) {
                return;
            }
            if (!validate(exchange)) {
                return;
            }
            switch (verdict) {
                case REFUSE -> reply(exchange, Rcode.REFUSED, ServerMetrics.ErrorReason.REFUSED, ExtendedError.PROHIBITED, null);
                case SLIP -> slip(exchange);
                default -> {
                    if (stripClientSubnet) {
                        stripClientSubnet(exchange);
                    }
                    if (answerLocally(exchange)) {
                        return;
                    }
                    if (metrics.inFlight() > maxInFlight) { // this query counts too
                        reply(exchange, Rcode.SERVFAIL, ServerMetrics.ErrorReason.BUSY, ExtendedError.OTHER,
                                "too many queries in flight");
                    } else {
                        forward(exchange);
                    }
                }
            }
        } catch (RuntimeException e) {
            failedInside(exchange, e);
        }
    }

    /**
     * A fault of our own (a bug, an allocation failure) while a stage ran: the client still gets
     * an answer when one can be made, the query's buffer goes back, and the listener serves on.
     */
    private void failedInside(Exchange exchange, RuntimeException e) {
        LOG.debugf(e, "Query failed inside the proxy");
        if (exchange.isComplete()) {
            return; // it was answered before the fault; a late answer will be released by complete()
        }
        if (exchange.parsed() == null) {
            drop(exchange, ServerMetrics.Drop.INTERNAL);
            return;
        }
        try {
            reply(exchange, Rcode.SERVFAIL, ServerMetrics.ErrorReason.INTERNAL, ExtendedError.OTHER, "internal error");
        } catch (RuntimeException again) {
            drop(exchange, ServerMetrics.Drop.INTERNAL);
        }
    }

    /**
     * Stage 1, on the buffer as received. A packet too short for a header, or a response, is no
     * query: it is dropped before anything else (answering responses invites reflection loops).
     * Then the admission's verdict; a dropped query ends here, a refused one is answered once its
     * wire format is known.
     */
    private Admission.Verdict admit(Exchange exchange) {
        ByteBuf query = exchange.query();
        if (query.readableBytes() < Header.LENGTH) {
            drop(exchange, ServerMetrics.Drop.SHORT);
            return Admission.Verdict.DROP;
        }
        if (Header.isResponse(query, query.readerIndex())) {
            drop(exchange, ServerMetrics.Drop.RESPONSE);
            return Admission.Verdict.DROP;
        }
        Admission.Verdict verdict = admission.admit(exchange.client(), exchange.transport());
        if (verdict == Admission.Verdict.DROP) {
            drop(exchange, ServerMetrics.Drop.NOT_ADMITTED);
        }
        return verdict;
    }

    /** Stage 2: one well-formed message (FORMERR), opcode QUERY (NOTIMP), one question (FORMERR, RFC 9619). */
    private boolean validate(Exchange exchange) {
        ByteBuf query = exchange.query();
        Message parsed;
        try {
            parsed = Message.parse(query);
        } catch (WireFormatException e) {
            ByteBuf answer = Replies.formatError(exchange.alloc(), query);
            reply(exchange, answer, ServerMetrics.ErrorReason.MALFORMED);
            return false;
        }
        exchange.parsed(parsed);
        if (parsed.opcode() != Header.OPCODE_QUERY) {
            reply(exchange, Rcode.NOTIMP, ServerMetrics.ErrorReason.OPCODE, ExtendedError.NOT_SUPPORTED, "only QUERY");
            return false;
        }
        if (parsed.questionCount() != 1) {
            reply(exchange, Rcode.FORMERR, ServerMetrics.ErrorReason.MALFORMED, ExtendedError.OTHER, "not one question");
            return false;
        }
        return true;
    }

    /** The admission's middle way for a UDP client it distrusts: an empty answer with TC=1. */
    private void slip(Exchange exchange) {
        metrics.slipped(exchange.transport());
        deliver(exchange, Replies.truncated(exchange.alloc(), exchange.query(), exchange.parsed()));
    }

    /**
     * Between validation and the local answers: the query loses its ECS option, so that the
     * addresses of pods and nodes never reach a public resolver, and the local answers see the
     * query as it will be forwarded. A query without ECS keeps its buffer.
     */
    private void stripClientSubnet(Exchange exchange) {
        ByteBuf query = exchange.query();
        Message parsed = exchange.parsed();
        if (!ClientSubnet.present(query, parsed)) {
            return;
        }
        ByteBuf stripped = exchange.alloc().directBuffer(parsed.length());
        Message view;
        try {
            ClientSubnet.writeWithout(stripped, query, parsed);
            view = Message.parse(stripped);
        } catch (WireFormatException | RuntimeException e) {
            stripped.release();
            throw new IllegalStateException("a query without its ECS option no longer parses", e);
        }
        exchange.rewriteQuery(stripped, view);
        exchange.clientSubnetStripped(true);
        metrics.clientSubnetStripped(exchange.transport());
    }

    /**
     * The answer without the upstream's ECS option, for a query that was stripped of its own: a
     * resolver must not send ECS in an answer to a query without it (RFC 7871 §7.2.2). An answer
     * that does not parse goes on as it is (the way back judges it).
     */
    private static ByteBuf withoutClientSubnet(Exchange exchange, ByteBuf answer) {
        Message parsed;
        try {
            parsed = Message.parse(answer);
        } catch (WireFormatException e) {
            return answer;
        }
        if (!ClientSubnet.present(answer, parsed)) {
            return answer;
        }
        ByteBuf stripped = exchange.alloc().directBuffer(parsed.length());
        try {
            ClientSubnet.writeWithout(stripped, answer, parsed);
        } catch (RuntimeException e) {
            stripped.release();
            throw e;
        }
        answer.release();
        return stripped;
    }

    /** Stage 3: an answer without asking upstream, when the local answers have one. */
    private boolean answerLocally(Exchange exchange) {
        ByteBuf answer = localAnswers.answer(exchange.query(), exchange.parsed(), exchange.alloc());
        if (answer == null) {
            return false;
        }
        deliver(exchange, answer);
        return true;
    }

    /**
     * Stage 4: to the upstream group, under the query's deadline; it calls back exactly once. The
     * query outlives this call from here on, so it leaves the buffer it was received in.
     */
    private void forward(Exchange exchange) {
        exchange.keepCopy();
        upstream.query(exchange.query(), exchange.parsed(), System.nanoTime() + timeoutNanos, exchange);
    }

    /** The way back from upstream. */
    void answered(Exchange exchange, ByteBuf answer) {
        if (exchange.clientSubnetStripped()) {
            try {
                answer = withoutClientSubnet(exchange, answer);
            } catch (RuntimeException e) {
                answer.release();
                failedInside(exchange, e);
                return;
            }
        }
        deliver(exchange, answer);
    }

    void failed(Exchange exchange, UpstreamFailure failure) {
        reply(exchange, Rcode.SERVFAIL, ServerMetrics.ErrorReason.UPSTREAM, extendedError(failure), failure.description());
    }

    /** Why no upstream answered, as RFC 8914 names it: not reached (22), or broken on the way (23). */
    private static ExtendedError extendedError(UpstreamFailure failure) {
        return switch (failure) {
            case TIMEOUT, CONNECT, UNAVAILABLE -> ExtendedError.NO_REACHABLE_AUTHORITY;
            case TLS, CLOSED -> ExtendedError.NETWORK_ERROR;
            case OVERLOADED -> ExtendedError.OTHER; // our own limit, said in the text
        };
    }

    /** Fits an answer to a UDP client's size (RFC 1035 §4.2.1, RFC 6891 §6.2.5), counts it and sends it. */
    private void deliver(Exchange exchange, ByteBuf answer) {
        if (exchange.transport() == Transport.UDP) {
            int limit = Math.min(exchange.parsed().udpPayloadLimit(), maxUdpPayload);
            if (answer.readableBytes() > limit) {
                try {
                    answer = Truncation.fit(exchange.alloc(), answer, limit);
                    metrics.truncated();
                } catch (WireFormatException e) {
                    reply(exchange, Rcode.SERVFAIL, ServerMetrics.ErrorReason.UNTRUNCATABLE, ExtendedError.OTHER,
                            "answer too long for UDP and not parseable to truncate");
                    return;
                }
            }
        }
        metrics.response(exchange.transport(), Header.rcode(Header.flags(answer, answer.readerIndex())));
        exchange.complete(answer);
    }

    /**
     * Answers with an error of the proxy's own to a query that parsed, with an Extended DNS Error
     * (RFC 8914) for a client that speaks EDNS; counted by reason and by EDE code either way.
     */
    private void reply(Exchange exchange, int rcode, ServerMetrics.ErrorReason reason, ExtendedError ede, String text) {
        metrics.extendedError(ede);
        reply(exchange, Replies.error(exchange.alloc(), exchange.query(), exchange.parsed(), rcode, ede, text), reason);
    }

    private void reply(Exchange exchange, ByteBuf answer, ServerMetrics.ErrorReason reason) {
        metrics.error(exchange.transport(), reason);
        metrics.response(exchange.transport(), Header.rcode(Header.flags(answer, answer.readerIndex())));
        exchange.complete(answer);
    }

    private void drop(Exchange exchange, ServerMetrics.Drop reason) {
        metrics.dropped(exchange.transport(), reason);
        exchange.complete(null);
    }

    /** An exchange ended: one query fewer in flight. */
    void settled() {
        metrics.querySettled();
    }
}
