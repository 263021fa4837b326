package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Message;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Type;

/** The pool of pipelined DoT connections: reuse, its size limit, resumption, padding. */
class ConnectionPoolTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued GOOD = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of());

    @Test
    void tenThousandQueriesFromFiftyClientsOpenNoMoreThanThePoolSize() throws Exception {
        int poolSize = 2;
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).poolSize(poolSize).maxInFlight(8).start()) {
            ExecutorService clients = Executors.newFixedThreadPool(50);
            try {
                List<Future<Integer>> results = new ArrayList<>();
                for (int client = 0; client < 50; client++) {
                    int id = client;
                    results.add(clients.submit(() -> {
                        int answered = 0;
                        for (int i = 0; i < 200; i++) {
                            Message query = DnsClient.query("c" + id + "-" + i + ".example.");
                            Message answer = i % 10 == 0 ? DnsClient.tcp(proxy.port(), query) : DnsClient.udp(proxy.port(), query);
                            if (answer.getRcode() == Rcode.NOERROR && answer.getHeader().getID() == query.getHeader().getID()) {
                                answered++;
                            }
                        }
                        return answered;
                    }));
                }
                int answered = 0;
                for (Future<Integer> result : results) {
                    answered += result.get();
                }
                assertEquals(10_000, answered);
            } finally {
                clients.shutdownNow();
            }
            assertEquals(10_000, upstream.queries().size());
            assertTrue(upstream.connectionsAccepted() <= poolSize, "connections: " + upstream.connectionsAccepted());
            assertTrue(upstream.handshakesCompleted() <= poolSize, "handshakes: " + upstream.handshakesCompleted());
            assertEquals(upstream.handshakesCompleted(), proxy.count("dotproxy.upstream.handshakes"));
        }
    }

    @Test
    void reconnectAfterAnIdleCloseResumesTheTlsSession() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).idleTimeout(Duration.ofMillis(200)).start()) {
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("one.example.")).getRcode());
            assertEquals(0, awaitConnections(proxy, 0, Duration.ofSeconds(5)), "idle connection closed");
            assertEquals(0, proxy.count("dotproxy.upstream.errors", "result", "closed"), "an idle close is not an error");

            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("two.example.")).getRcode());
            assertEquals(2, upstream.connectionsAccepted());
            assertEquals(2, proxy.count("dotproxy.upstream.handshakes"));
            assertEquals(1, proxy.count("dotproxy.upstream.handshakes.resumed"), "second handshake resumed the first session");
        }
    }

    @Test
    void lightTrafficKeepsEveryPooledConnectionOpenSoNoHandshakeInterruptsIt() throws Exception {
        Duration idle = Duration.ofMillis(500);
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).poolSize(2).maxInFlight(4)
                     .idleTimeout(idle).start()) {
            // A burst puts a quarter of a connection's room (here 1 of 4) in flight, so the second opens.
            ExecutorService clients = Executors.newFixedThreadPool(16);
            try {
                List<Future<Integer>> burst = new ArrayList<>();
                for (int i = 0; i < 64; i++) {
                    String name = "burst" + i + ".example.";
                    burst.add(clients.submit(() -> DnsClient.udp(proxy.port(), DnsClient.query(name)).getRcode()));
                }
                for (Future<Integer> rcode : burst) {
                    assertEquals(Rcode.NOERROR, rcode.get());
                }
            } finally {
                clients.shutdownNow();
            }
            // The second connection may still be in its handshake.
            assertEquals(2, awaitConnections(proxy, 2, Duration.ofSeconds(5)), "the burst opened the whole pool");
            double handshakes = proxy.count("dotproxy.upstream.handshakes");

            // Then one query at a time, for three idle timeouts: each connection still gets traffic.
            long end = System.nanoTime() + idle.multipliedBy(3).toNanos();
            for (int i = 0; System.nanoTime() < end; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("light" + i + ".example.")).getRcode());
                Thread.sleep(20);
            }
            assertEquals(2, proxy.gauge("dotproxy.upstream.connections"), "no pooled connection idled out");
            assertEquals(handshakes, proxy.count("dotproxy.upstream.handshakes"), "no new handshake");
        }
    }

    @Test
    void upstreamThatClosesIdleConnectionsEarlyIsNotCountedAsFailing() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, (q, c) ->
                new FakeUpstream.AnswerThenClose(FakeUpstream.answerA(q, "192.0.2.1")));
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).start()) {
            for (int i = 0; i < 5; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("early" + i + ".example.")).getRcode());
                assertEquals(0, awaitConnections(proxy, 0, Duration.ofSeconds(2)), "closed by the upstream");
            }
            assertEquals(5, upstream.connectionsAccepted());
            assertEquals(0, proxy.count("dotproxy.upstream.errors", "result", "closed"));
            assertEquals(0, proxy.count("dotproxy.upstream.requests", "result", "closed"));
            assertEquals(UpstreamHealth.State.UP, proxy.group().members().get(0).health().state());
        }
    }

    @Test
    void handshakeBudgetBoundsNewConnectionsToAnUpstreamThatKeepsDroppingThem() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, (q, c) -> new FakeUpstream.Close());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).handshakeBudget(3, 0.5).start()) {
            for (int i = 0; i < 10; i++) {
                assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("storm" + i + ".example.")).getRcode());
            }
            assertTrue(upstream.connectionsAccepted() <= 4, "burst of 3, then one per two seconds: "
                    + upstream.connectionsAccepted());
            assertTrue(proxy.count("dotproxy.upstream.requests", "result", "unavailable") >= 1,
                    "queries beyond the budget fail fast instead of opening connections");
        }
    }

    @Test
    void queriesWithEdnsArePaddedToBlocksOf128Octets() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).start()) {
            Message withEdns = DnsClient.query("padded.example.", Type.A, 1232);
            Message plain = DnsClient.query("not-padded.example.", Type.A, 0);
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), withEdns).getRcode());
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), plain).getRcode());

            assertEquals(128, upstream.frameLengths().get(0));
            OPTRecord opt = upstream.queries().get(0).getOPT();
            assertEquals(1, opt.getOptions(12).size(), "one Padding option (RFC 7830)");
            assertEquals(withEdns.getQuestion(), upstream.queries().get(0).getQuestion());
            assertEquals(plain.toWire().length, upstream.frameLengths().get(1), "no EDNS, nowhere to pad");
        }
    }

    /** The gauge of open connections once it reads {@code expected}, or when {@code within} ends. */
    private static double awaitConnections(ProxyHarness proxy, double expected, Duration within) throws Exception {
        return Eventually.retry(within, Duration.ofMillis(5), () -> proxy.gauge("dotproxy.upstream.connections"),
                open -> open == expected);
    }
}
