package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakePlainServer;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/** Every DoT upstream down: clear-text fallback when (and only when) it is configured. */
class FallbackTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued GOOD = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of());

    private static int closedPort() throws Exception {
        try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return probe.getLocalPort();
        }
    }

    private static String address(Message answer) {
        return ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress();
    }

    @Test
    void withFallbackQueriesAreAnsweredInClearOnlyWhileEveryDotUpstreamIsDown() throws Exception {
        int dotPort = closedPort();
        try (FakePlainServer plain = new FakePlainServer(q -> FakeUpstream.answerA(q, "192.0.2.53"));
             ProxyHarness proxy = ProxyHarness.builder(CA)
                     .upstream("127.0.0.1:" + dotPort + "#" + ProxyHarness.TLS_NAME)
                     .fallback(plain.address())
                     .attemptTimeout(Duration.ofMillis(300))
                     .firstBackOff(Duration.ofMillis(200))
                     .start()) {
            Set<Integer> idsSeen = new HashSet<>();
            for (int i = 0; i < 5; i++) {
                Message query = DnsClient.query("fb" + i + ".example.");
                query.getHeader().setID(7);
                Message answer = DnsClient.udp(proxy.port(), query);
                assertEquals(Rcode.NOERROR, answer.getRcode());
                assertEquals(7, answer.getHeader().getID());
                assertEquals("192.0.2.53", address(answer));
            }
            plain.udpQueries().forEach(q -> idsSeen.add(q.getHeader().getID()));
            assertTrue(idsSeen.size() >= 4, "fresh random IDs, not the client's: " + idsSeen);
            assertTrue(proxy.count("dotproxy.upstream.fallback.queries") >= 4);
            assertTrue(proxy.group().usingFallback());

            // The DoT upstream comes back: the fallback is left by itself.
            try (FakeUpstream dot = FakeUpstream.start(GOOD, (q, c) ->
                    new FakeUpstream.Answer(FakeUpstream.answerA(q, "192.0.2.1"), Duration.ZERO), dotPort)) {
                String from = Eventually.retry(Duration.ofSeconds(10), Duration.ofMillis(50),
                        () -> address(DnsClient.udp(proxy.port(), DnsClient.query("back.example."))), "192.0.2.1"::equals);
                assertEquals("192.0.2.1", from);
                int plainBefore = plain.packetsReceived();
                for (int i = 0; i < 5; i++) {
                    assertEquals("192.0.2.1", address(DnsClient.udp(proxy.port(), DnsClient.query("dot" + i + ".example."))));
                }
                assertEquals(plainBefore, plain.packetsReceived(), "no clear text once DoT works");
                assertTrue(!proxy.group().usingFallback());
            }
        }
    }

    @Test
    void fallbackRetriesOverTcpWhenTruncatedAndIgnoresSpoofedAnswers() throws Exception {
        try (FakePlainServer plain = new FakePlainServer(q -> FakeUpstream.answerTxt(q, 6, 200));
             ProxyHarness proxy = ProxyHarness.builder(CA)
                     .upstream("127.0.0.1:" + closedPort() + "#" + ProxyHarness.TLS_NAME)
                     .fallback(plain.address())
                     .start()) {
            plain.sendDecoyFirst();
            Message query = DnsClient.query("big.example.", Type.TXT, 0);
            Message answer = DnsClient.tcp(proxy.port(), query);
            assertEquals(Rcode.NOERROR, answer.getRcode());
            assertEquals(6, answer.getSection(Section.ANSWER).size());
            assertEquals(1, plain.tcpQueries().size(), "TC over UDP, then TCP");
            assertTrue(proxy.count("dotproxy.upstream.errors", "result", "mismatch") >= 1, "the decoy was dropped");
        }
    }

    @Test
    void theFallbacksSocketsAreBoundedAQueryBeyondTheCapFailsAtOnce() throws Exception {
        try (DatagramSocket silent = new DatagramSocket(new InetSocketAddress("127.0.0.1", 0));
             ProxyHarness proxy = ProxyHarness.builder(CA)
                     .upstream("127.0.0.1:" + closedPort() + "#" + ProxyHarness.TLS_NAME)
                     .fallback((InetSocketAddress) silent.getLocalSocketAddress())
                     .fallbackMaxInFlight(1)
                     .timeout(Duration.ofMillis(1500))
                     .attemptTimeout(Duration.ofMillis(300))
                     .firstBackOff(Duration.ofSeconds(30))
                     .start();
             DatagramSocket client = new DatagramSocket(new InetSocketAddress("127.0.0.1", 0))) {
            DnsClient.udp(proxy.port(), DnsClient.query("down.example.")); // the DoT upstream is found down
            String plain = "127.0.0.1:" + silent.getLocalPort() + "#plain";
            double before = proxy.count("dotproxy.upstream.requests", "upstream", plain, "result", "overloaded");
            byte[] first = DnsClient.query("first.example.").toWire();
            client.send(new DatagramPacket(first, first.length, new InetSocketAddress("127.0.0.1", proxy.port())));
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5),
                    () -> proxy.gauge("dotproxy.upstream.in.flight", "upstream", plain) == 1), "one socket open");
            long started = System.nanoTime();
            Message second = DnsClient.udp(proxy.port(), DnsClient.query("second.example."));
            assertEquals(Rcode.SERVFAIL, second.getRcode());
            assertTrue(Duration.ofNanos(System.nanoTime() - started).compareTo(Duration.ofMillis(700)) < 0,
                    "failed at once, not queued behind the first");
            assertEquals(before + 1, proxy.count("dotproxy.upstream.requests", "upstream", plain, "result", "overloaded"));
        }
    }

    @Test
    void withoutFallbackEveryDotUpstreamDownMeansServfailInTimeAndNoClearText() throws Exception {
        try (FakePlainServer plain = new FakePlainServer(q -> FakeUpstream.answerA(q, "192.0.2.53"));
             ProxyHarness proxy = ProxyHarness.builder(CA)
                     .upstream("127.0.0.1:" + closedPort() + "#" + ProxyHarness.TLS_NAME)
                     .upstream("127.0.0.1:" + closedPort() + "#" + ProxyHarness.TLS_NAME)
                     .timeout(Duration.ofMillis(800))
                     .start()) {
            for (int i = 0; i < 5; i++) {
                long started = System.nanoTime();
                Message answer = DnsClient.udp(proxy.port(), DnsClient.query("strict" + i + ".example."));
                assertEquals(Rcode.SERVFAIL, answer.getRcode());
                assertTrue(Duration.ofNanos(System.nanoTime() - started).compareTo(Duration.ofMillis(800 + 500)) < 0);
            }
            assertEquals(0, plain.packetsReceived());
            assertEquals(0, proxy.count("dotproxy.upstream.fallback.queries"));
        }
    }

    @Test
    void withEveryUpstreamDownQueriesStillTryOneSoABlipHealsBeforeAnyProbe() throws Exception {
        int port = closedPort();
        try (ProxyHarness proxy = ProxyHarness.builder(CA)
                .upstream("127.0.0.1:" + port + "#" + ProxyHarness.TLS_NAME)
                .firstBackOff(Duration.ofSeconds(30)) // no probe during this test
                .start()) {
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("blip.example.")).getRcode());
            assertEquals(UpstreamHealth.State.DOWN, proxy.group().members().get(0).health().state());
            try (FakeUpstream back = FakeUpstream.start(GOOD, FakeUpstream.answering(), port)) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("healed.example.")).getRcode(),
                        "the least recently failed upstream is tried although it looks down");
                assertEquals(UpstreamHealth.State.UP, proxy.group().members().get(0).health().state());
            }
        }
    }

    @Test
    void allDownCanBeToldToServfailAtOnce() throws Exception {
        try (ProxyHarness proxy = ProxyHarness.builder(CA)
                .upstream("127.0.0.1:" + closedPort() + "#" + ProxyHarness.TLS_NAME)
                .servfailWhenAllDown()
                .firstBackOff(Duration.ofSeconds(5))
                .start()) {
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("a.example.")).getRcode());
            double attempts = proxy.count("dotproxy.upstream.requests");
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("b.example.")).getRcode());
            assertEquals(attempts, proxy.count("dotproxy.upstream.requests"), "nothing sent while down");
        }
    }
}
