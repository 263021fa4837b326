package io.dotproxy.server;

import io.dotproxy.dns.ExtendedError;
import io.dotproxy.dns.Rcode;
import io.dotproxy.metrics.Tally;
import io.dotproxy.net.Transport;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.EnumMap;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The listeners' meters, registered once; tags are only {@code proto}, {@code rcode} and
 * {@code result}, never a client address or a query name.
 */
public final class ServerMetrics {
    /** Why a packet got no answer at all. */
    public enum Drop {
        /** Shorter than a DNS header: nothing to answer to. */
        SHORT,
        /** The QR bit is set: answering responses invites reflection loops. */
        RESPONSE,
        /** The admission stage (the guard) dropped it. */
        NOT_ADMITTED,
        /** A fault of the proxy's own before the query parsed (logged at DEBUG). */
        INTERNAL
    }

    /** Why a client TCP connection was closed as soon as it was accepted. */
    public enum Rejection {
        /** The cap on connections in all was reached. */
        TOTAL,
        /** The cap on connections from one client address was reached. */
        PER_CLIENT
    }

    /** Why the proxy closed a client TCP connection it had accepted (idle ones aside). */
    public enum Closing {
        /** A frame began and did not complete within the frame timeout (a slow drip). */
        FRAME_TIMEOUT,
        /** Retired after its maximum number of queries, once answered. */
        MAX_QUERIES,
        /** Retired at its maximum age, once answered. */
        MAX_AGE,
        /** Retired by a graceful stop (SIGTERM): at once when idle, else once its queries are answered. */
        DRAIN
    }

    /** Why the proxy answered with an error of its own instead of an upstream's answer. */
    public enum ErrorReason {
        /** The query did not parse past its header, or had no single question: FORMERR. */
        MALFORMED,
        /** An opcode other than QUERY: NOTIMP. */
        OPCODE,
        /** The upstreams gave no answer in time or failed: SERVFAIL. */
        UPSTREAM,
        /** The upstream's answer was too long for UDP and could not be parsed to truncate it: SERVFAIL. */
        UNTRUNCATABLE,
        /** The admission stage (the guard) refused the client: REFUSED. */
        REFUSED,
        /** A fault of the proxy's own while a stage ran (logged at DEBUG): SERVFAIL. */
        INTERNAL,
        /** The proxy had as many queries in flight as it may: SERVFAIL at once. */
        BUSY
    }

    private final EnumMap<Transport, Tally> queries = new EnumMap<>(Transport.class);
    private final EnumMap<Transport, Tally[]> responses = new EnumMap<>(Transport.class);
    private final EnumMap<Transport, EnumMap<Drop, Tally>> drops = new EnumMap<>(Transport.class);
    private final EnumMap<Transport, EnumMap<ErrorReason, Tally>> errors = new EnumMap<>(Transport.class);
    private final EnumMap<ExtendedError, Tally> extendedErrors = new EnumMap<>(ExtendedError.class);
    private final Tally truncated;
    private final EnumMap<Transport, Tally> slipped = new EnumMap<>(Transport.class);
    private final EnumMap<Transport, Tally> clientSubnetStripped = new EnumMap<>(Transport.class);
    private final EnumMap<Rejection, Tally> rejectedConnections = new EnumMap<>(Rejection.class);
    private final EnumMap<Closing, Tally> closedConnections = new EnumMap<>(Closing.class);
    private final AtomicInteger openConnections = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger();

    public ServerMetrics(MeterRegistry registry) {
        for (Transport transport : Transport.values()) {
            String proto = transport.tag();
            queries.put(transport, Tally.register(registry, "dotproxy.server.queries",
                    "Queries received, by transport", "proto", proto));
            Tally[] byRcode = new Tally[Rcode.HEADER_VALUES];
            for (int rcode = 0; rcode < byRcode.length; rcode++) {
                byRcode[rcode] = Tally.register(registry, "dotproxy.server.responses",
                        "Answers sent to clients, by transport and response code", "proto", proto, "rcode", Rcode.name(rcode));
            }
            responses.put(transport, byRcode);
            EnumMap<Drop, Tally> dropCounters = new EnumMap<>(Drop.class);
            for (Drop drop : Drop.values()) {
                dropCounters.put(drop, Tally.register(registry, "dotproxy.server.dropped",
                        "Packets dropped without an answer, by reason", "proto", proto, "result", tag(drop)));
            }
            drops.put(transport, dropCounters);
            EnumMap<ErrorReason, Tally> errorCounters = new EnumMap<>(ErrorReason.class);
            for (ErrorReason error : ErrorReason.values()) {
                errorCounters.put(error, Tally.register(registry, "dotproxy.server.errors",
                        "Error answers made by the proxy itself, by reason", "proto", proto, "result", tag(error)));
            }
            errors.put(transport, errorCounters);
            slipped.put(transport, Tally.register(registry, "dotproxy.server.slipped",
                    "Empty TC=1 answers the admission stage chose instead of an answer or a drop", "proto", proto));
            clientSubnetStripped.put(transport, Tally.register(registry, "dotproxy.server.client.subnet.stripped",
                    "Queries whose EDNS Client Subnet option (RFC 7871) was removed before they went upstream",
                    "proto", proto));
        }
        for (ExtendedError ede : ExtendedError.values()) {
            extendedErrors.put(ede, Tally.register(registry, "dotproxy.server.extended.errors",
                    "Error answers made by the proxy itself, by the Extended DNS Error code (RFC 8914) of their reason",
                    "result", ede.tag()));
        }
        truncated = Tally.register(registry, "dotproxy.server.truncated",
                "UDP answers cut to the client's payload size with TC=1", "proto", Transport.UDP.tag());
        for (Rejection rejection : Rejection.values()) {
            rejectedConnections.put(rejection, Tally.register(registry, "dotproxy.server.connections.rejected",
                    "TCP connections closed at once because a connection cap was reached", "proto", Transport.TCP.tag(),
                    "result", tag(rejection)));
        }
        for (Closing closing : Closing.values()) {
            closedConnections.put(closing, Tally.register(registry, "dotproxy.server.connections.closed",
                    "Client TCP connections the proxy closed, by reason (idle ones aside)", "proto", Transport.TCP.tag(),
                    "result", tag(closing)));
        }
        Gauge.builder("dotproxy.server.connections", openConnections, AtomicInteger::get)
                .description("Open client TCP connections")
                .tag("proto", Transport.TCP.tag()).register(registry);
        Gauge.builder("dotproxy.server.in.flight", inFlight, AtomicInteger::get)
                .description("Queries accepted and not yet answered or dropped, over every listener")
                .register(registry);
    }

    private static String tag(Enum<?> value) {
        return value.name().toLowerCase(Locale.ROOT);
    }

    /** A query arrived: counted, and in flight until {@link #querySettled()}. */
    void queryStarted(Transport transport) {
        queries.get(transport).increment();
        inFlight.incrementAndGet();
    }

    void querySettled() {
        inFlight.decrementAndGet();
    }

    int inFlight() {
        return inFlight.get();
    }

    void response(Transport transport, int headerRcode) {
        responses.get(transport)[headerRcode & 0xF].increment();
    }

    void dropped(Transport transport, Drop drop) {
        drops.get(transport).get(drop).increment();
    }

    void error(Transport transport, ErrorReason error) {
        errors.get(transport).get(error).increment();
    }

    void extendedError(ExtendedError ede) {
        extendedErrors.get(ede).increment();
    }

    void slipped(Transport transport) {
        slipped.get(transport).increment();
    }

    void clientSubnetStripped(Transport transport) {
        clientSubnetStripped.get(transport).increment();
    }

    void truncated() {
        truncated.increment();
    }

    /** Counts a new connection; false (and counted as rejected) when {@code max} are open. */
    boolean tryOpenConnection(int max) {
        while (true) {
            int open = openConnections.get();
            if (open >= max) {
                connectionRejected(Rejection.TOTAL);
                return false;
            }
            if (openConnections.compareAndSet(open, open + 1)) {
                return true;
            }
        }
    }

    void connectionRejected(Rejection rejection) {
        rejectedConnections.get(rejection).increment();
    }

    /** The proxy closed a connection it had accepted, for this reason (the gauge follows its close). */
    void closedByProxy(Closing closing) {
        closedConnections.get(closing).increment();
    }

    void connectionClosed() {
        openConnections.decrementAndGet();
    }

    int openConnections() {
        return openConnections.get();
    }
}
