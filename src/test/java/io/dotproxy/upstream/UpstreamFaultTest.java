package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;

/** What clients see when the DoT upstream misbehaves, and what the upstream sees. */
class UpstreamFaultTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued GOOD = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1"));
    /** The first connection's path is dead (nothing ever comes back); later ones answer. */
    private static final FakeUpstream.Behaviour DEAD_FIRST_PATH = (query, connection) -> connection == 0
            ? new FakeUpstream.Silence()
            : new FakeUpstream.Answer(FakeUpstream.answerA(query, "192.0.2.8"), Duration.ZERO);

    @ParameterizedTest
    @ValueSource(strings = {"udp", "tcp"})
    void silentUpstreamGivesServfailAtTheDeadline(String transport) throws IOException {
        Duration timeout = Duration.ofMillis(400);
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, (q, c) -> new FakeUpstream.Silence());
             ProxyHarness proxy = ProxyHarness.start(CA, timeout, upstream)) {
            Message query = DnsClient.query("blackhole.example.");
            long started = System.nanoTime();
            Message answer = transport.equals("udp") ? DnsClient.udp(proxy.port(), query) : DnsClient.tcp(proxy.port(), query);
            Duration took = Duration.ofNanos(System.nanoTime() - started);

            assertEquals(Rcode.SERVFAIL, answer.getRcode());
            assertEquals(query.getHeader().getID(), answer.getHeader().getID());
            assertEquals(query.getQuestion(), answer.getQuestion());
            assertTrue(took.compareTo(timeout) >= 0, "not before the deadline: " + took);
            assertTrue(took.compareTo(timeout.plusMillis(600)) < 0, "soon after the deadline: " + took);
            assertEquals(1, upstream.queries().size(), "the query did reach the upstream");
            assertEquals(1, proxy.count("dotproxy.upstream.requests", "result", "timeout"));
            assertEquals(1, proxy.count("dotproxy.server.errors", "proto", transport, "result", "upstream"));
            assertEquals(0, proxy.inFlight(), "the failed query left the pipeline's count");
        }
    }

    @Test
    void connectionThatReadsNothingAfterATimeoutIsRetiredAndTheNextQueryUsesAFreshOne() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, DEAD_FIRST_PATH);
             ProxyHarness proxy = ProxyHarness.start(CA, Duration.ofMillis(400), upstream)) {
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("lost.example.")).getRcode());
            int rcode = Eventually.retry(Duration.ofSeconds(3), Duration.ZERO,
                    () -> DnsClient.udp(proxy.port(), DnsClient.query("found.example.")).getRcode(), r -> r == Rcode.NOERROR);
            assertEquals(Rcode.NOERROR, rcode);
            assertEquals(2, upstream.connectionsAccepted(), "the silent connection was replaced");
        }
    }

    @Test
    void aDeadPathIsReplacedAfterATimeoutEvenWhenQueriesHaveLessTimeThanAConnect() throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, DEAD_FIRST_PATH);
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).timeout(Duration.ofMillis(300))
                     .attemptTimeout(Duration.ofSeconds(5)).poolSize(1).start()) {
            // The first query may have waited for the handshake, which proves the path alive; the
            // next one is silent for its whole 300 ms, far less than the 5 s a connect may take.
            List<Integer> rcodes = new ArrayList<>();
            while (rcodes.size() < 3 && !rcodes.contains(Rcode.NOERROR)) {
                rcodes.add(DnsClient.udp(proxy.port(), DnsClient.query("q" + rcodes.size() + ".example.")).getRcode());
            }
            assertEquals(Rcode.NOERROR, rcodes.get(rcodes.size() - 1), "answered on a fresh connection: " + rcodes);
            assertEquals(2, upstream.connectionsAccepted(), "the silent connection was replaced");
        }
    }

    @Test
    void aQueryThatWaitedForRoomAndThenTimesOutDoesNotRetireAConnectionThatJustAnswered() throws Exception {
        // One connection, one query in flight: "second" waits for "first" (answered after 300 ms),
        // is written then, and times out 300 ms later with nothing read since. The connection
        // answered 300 ms before: slow, not dead, and re-opening it would only add a handshake
        // (under load, one per timeout).
        FakeUpstream.Behaviour slowThenSilent = (query, connection) -> {
            String name = query.getQuestion().getName().toString();
            if (name.startsWith("second.")) {
                return new FakeUpstream.Silence();
            }
            Duration delay = name.startsWith("first.") ? Duration.ofMillis(300) : Duration.ZERO;
            return new FakeUpstream.Answer(FakeUpstream.answerA(query, "192.0.2.7"), delay);
        };
        Duration timeout = Duration.ofMillis(600);
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, slowThenSilent);
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).timeout(timeout).attemptTimeout(timeout)
                     .poolSize(1).maxInFlight(1).start()) {
            // The connection is open before anything is timed.
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("warm-up.example.")).getRcode());
            ExecutorService clients = Executors.newFixedThreadPool(2);
            try {
                Future<Integer> first = clients.submit(() -> DnsClient.udp(proxy.port(), DnsClient.query("first.example.")).getRcode());
                // Until "first" is on the wire, so "second" waits for it.
                int seen = Eventually.retry(Duration.ofSeconds(2), Duration.ofMillis(1), () -> upstream.queries().size(), n -> n >= 2);
                assertTrue(seen >= 2, "warm-up and first on the wire: " + seen);
                Future<Integer> second = clients.submit(() -> DnsClient.udp(proxy.port(), DnsClient.query("second.example.")).getRcode());
                assertEquals(Rcode.NOERROR, first.get());
                assertEquals(Rcode.SERVFAIL, second.get(), "written with about 300 ms of its 600 left, never answered");
            } finally {
                clients.shutdownNow();
            }
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("third.example.")).getRcode());
            assertEquals(1, proxy.count("dotproxy.upstream.requests", "result", "timeout"));
            assertEquals(1, upstream.connectionsAccepted(), "the connection that answered stays open");
        }
    }

    @Test
    void answerToAnotherQuestionIsIgnoredAndCounted() throws IOException {
        FakeUpstream.Behaviour confused = (query, connection) -> {
            Message other = FakeUpstream.answerA(DnsClient.query("other.example."), "192.0.2.66");
            other.getHeader().setID(query.getHeader().getID());
            return new FakeUpstream.Answer(other, Duration.ZERO);
        };
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, confused);
             ProxyHarness proxy = ProxyHarness.start(CA, Duration.ofMillis(300), upstream)) {
            Message answer = DnsClient.udp(proxy.port(), DnsClient.query("asked.example."));
            assertEquals(Rcode.SERVFAIL, answer.getRcode());
            assertEquals(1, proxy.count("dotproxy.upstream.errors", "result", "mismatch"));
        }
    }

    @Test
    void answerWithAnIdThatSharesTheQuerysSlotButIsNotItsIdIsIgnoredAndCounted() throws IOException {
        // 100 in flight per connection: a table of 256 slots, so ID + 256 falls in the query's slot.
        FakeUpstream.Behaviour offByOneLap = (query, connection) -> {
            Message answer = FakeUpstream.answerA(query, "192.0.2.66");
            answer.getHeader().setID((query.getHeader().getID() + 256) & 0xFFFF);
            return new FakeUpstream.Answer(answer, Duration.ZERO);
        };
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, offByOneLap);
             ProxyHarness proxy = ProxyHarness.start(CA, Duration.ofMillis(300), upstream)) {
            Message answer = DnsClient.udp(proxy.port(), DnsClient.query("asked.example."));
            assertEquals(Rcode.SERVFAIL, answer.getRcode(), "the same question under another ID is not this query's answer");
            assertEquals(1, proxy.count("dotproxy.upstream.errors", "result", "late"));
        }
    }

    /** A certificate the proxy must refuse, and why. */
    enum BadCertificate {
        WRONG_NAME(CA.issue(List.of("not-the-resolver.test"), List.of())),
        EXPIRED(CA.issue(List.of(ProxyHarness.TLS_NAME), List.of(),
                Instant.now().minus(Duration.ofDays(3)), Instant.now().minus(Duration.ofDays(1)))),
        UNTRUSTED_CA(TestCa.create().issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1")));

        final TestCa.Issued certificate;

        BadCertificate(TestCa.Issued certificate) {
            this.certificate = certificate;
        }
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(BadCertificate.class)
    void refusedCertificateGivesServfailAndNotOneOctetOfTheQueryInClear(BadCertificate bad) throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(bad.certificate, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, Duration.ofSeconds(2), upstream)) {
            Message query = DnsClient.query("secret-name.example.");
            for (String transport : List.of("udp", "tcp")) {
                Message answer = transport.equals("udp") ? DnsClient.udp(proxy.port(), query) : DnsClient.tcp(proxy.port(), query);
                assertEquals(Rcode.SERVFAIL, answer.getRcode(), transport);
            }
            assertTrue(upstream.queries().isEmpty(), "nothing decoded by the upstream");
            assertEquals(0, upstream.handshakesCompleted());
            String raw = new String(upstream.rawBytesReceived(), StandardCharsets.ISO_8859_1);
            assertFalse(raw.contains("secret-name"), "the query name never crossed the wire in clear");
            assertTrue(upstream.rawBytesReceived().length > 0, "a TLS ClientHello did arrive");
            assertTrue(proxy.count("dotproxy.upstream.errors", "result", "tls") >= 1);
        }
    }

    @Test
    void addressWithoutTlsNameIsCheckedAgainstTheCertificatesIpAddress() throws IOException {
        TestCa.Issued nameOnly = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of());
        try (FakeUpstream withIp = FakeUpstream.start(GOOD, FakeUpstream.answering());
             FakeUpstream withoutIp = FakeUpstream.start(nameOnly, FakeUpstream.answering());
             ProxyHarness good = ProxyHarness.start(CA, Duration.ofSeconds(2), List.of("127.0.0.1:" + withIp.port()));
             ProxyHarness bad = ProxyHarness.start(CA, Duration.ofSeconds(2), List.of("127.0.0.1:" + withoutIp.port()))) {
            assertEquals(Rcode.NOERROR, DnsClient.udp(good.port(), DnsClient.query("ip.example.")).getRcode());
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(bad.port(), DnsClient.query("ip.example.")).getRcode());
        }
    }

    @Test
    void queryInFlightWhenTheUpstreamClosesIsSentAgainOnANewConnection() throws IOException {
        FakeUpstream.Behaviour closeFirstConnection = (query, connection) -> connection == 0
                ? new FakeUpstream.Close()
                : new FakeUpstream.Answer(FakeUpstream.answerA(query, "192.0.2.7"), Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, closeFirstConnection);
             ProxyHarness proxy = ProxyHarness.start(CA, Duration.ofSeconds(2), upstream)) {
            Message query = DnsClient.query("retry.example.");
            Message answer = DnsClient.udp(proxy.port(), query);

            assertEquals(Rcode.NOERROR, answer.getRcode());
            assertEquals(query.getHeader().getID(), answer.getHeader().getID());
            assertEquals(List.of(0, 1), upstream.queryConnections(), "sent on the first connection, then again on a second");
            assertEquals(query.getQuestion(), upstream.queries().get(1).getQuestion());
            assertEquals(1, proxy.count("dotproxy.upstream.errors", "result", "closed"));
        }
    }

    @Test
    void queryIsNotSentForeverToAnUpstreamThatAlwaysCloses() throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, (q, c) -> new FakeUpstream.Close());
             ProxyHarness proxy = ProxyHarness.start(CA, Duration.ofSeconds(2), upstream)) {
            Message answer = DnsClient.udp(proxy.port(), DnsClient.query("poison.example."));
            assertEquals(Rcode.SERVFAIL, answer.getRcode());
            assertEquals(2, upstream.queries().size(), "one send and one resend");
            assertEquals(1, proxy.count("dotproxy.upstream.requests", "result", "closed"));
        }
    }

    @Test
    void manyConcurrentQueriesReuseOneConnection() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, Duration.ofSeconds(2), upstream)) {
            ExecutorService clients = Executors.newFixedThreadPool(8);
            try {
                List<Future<Integer>> results = new ArrayList<>();
                for (int i = 0; i < 400; i++) {
                    Message query = DnsClient.query("n" + i + ".example.");
                    boolean tcp = i % 4 == 0;
                    results.add(clients.submit(() -> (tcp ? DnsClient.tcp(proxy.port(), query)
                            : DnsClient.udp(proxy.port(), query)).getRcode()));
                }
                for (Future<Integer> result : results) {
                    assertEquals(Rcode.NOERROR, result.get());
                }
            } finally {
                clients.shutdownNow();
            }
            assertEquals(400, upstream.queries().size());
            assertEquals(1, upstream.connectionsAccepted());
            assertEquals(1, upstream.handshakesCompleted());
            assertEquals(0, proxy.inFlight(), "every answered query left the pipeline's count");
        }
    }

    @Test
    void refusedConnectionFailsFastAndTheNextUpstreamAnswers() throws Exception {
        int closedPort;
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = probe.getLocalPort();
        }
        try (FakeUpstream second = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness alone = ProxyHarness.start(CA, Duration.ofSeconds(2),
                     List.of("127.0.0.1:" + closedPort + "#" + ProxyHarness.TLS_NAME));
             ProxyHarness withSecond = ProxyHarness.start(CA, Duration.ofSeconds(2),
                     List.of("127.0.0.1:" + closedPort + "#" + ProxyHarness.TLS_NAME,
                             "127.0.0.1:" + second.port() + "#" + ProxyHarness.TLS_NAME))) {
            // The connection opened ahead at start-up is refused first, and opens the circuit.
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5),
                    () -> alone.count("dotproxy.upstream.errors", "result", "connect") == 1));
            long started = System.nanoTime();
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(alone.port(), DnsClient.query("refused.example.")).getRcode());
            assertTrue(Duration.ofNanos(System.nanoTime() - started).compareTo(Duration.ofSeconds(1)) < 0,
                    "no waiting for the deadline when nothing listens");
            // With every upstream down, the least recently failed one is still tried: one more refusal.
            assertEquals(2, alone.count("dotproxy.upstream.errors", "result", "connect"));

            assertEquals(Rcode.NOERROR, DnsClient.udp(withSecond.port(), DnsClient.query("refused.example.")).getRcode());
            assertEquals(1, second.queries().size());
        }
    }
}
