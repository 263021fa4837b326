package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;

class HedgingAndPinsTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued GOOD = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of());

    private static FakeUpstream.Behaviour answering(String address, Duration delay) {
        return (q, c) -> new FakeUpstream.Answer(FakeUpstream.answerA(q, address), delay);
    }

    private static String address(Message answer) {
        return ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress();
    }

    @Test
    void slowAttemptIsHedgedToAnotherUpstreamAndTheFirstAnswerWins() throws Exception {
        try (FakeUpstream slow = FakeUpstream.start(GOOD, answering("192.0.2.1", Duration.ofMillis(700)));
             FakeUpstream fast = FakeUpstream.start(GOOD, answering("192.0.2.2", Duration.ZERO));
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(slow).upstream(fast)
                     .policy("failover").hedging(Duration.ofMillis(50), 1.0).start()) {
            DnsClient.udp(proxy.port(), DnsClient.query("warm-up.example.")); // fills the hedge budget's window
            long started = System.nanoTime();
            Message answer = DnsClient.udp(proxy.port(), DnsClient.query("hedged.example."));
            Duration took = Duration.ofNanos(System.nanoTime() - started);
            assertEquals("192.0.2.2", address(answer));
            assertTrue(took.compareTo(Duration.ofMillis(600)) < 0, "did not wait for the slow upstream: " + took);
            assertTrue(proxy.count("dotproxy.upstream.hedges", "upstream", "127.0.0.1:" + fast.port() + "#" + ProxyHarness.TLS_NAME) >= 1,
                    "counted on the upstream the hedge went to");
            assertEquals(0, proxy.count("dotproxy.upstream.hedges", "upstream", "127.0.0.1:" + slow.port() + "#" + ProxyHarness.TLS_NAME));
        }
    }

    @Test
    void withoutHedgingTheSlowPreferredUpstreamIsAwaited() throws Exception {
        try (FakeUpstream slow = FakeUpstream.start(GOOD, answering("192.0.2.1", Duration.ofMillis(300)));
             FakeUpstream fast = FakeUpstream.start(GOOD, answering("192.0.2.2", Duration.ZERO));
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(slow).upstream(fast)
                     .policy("failover").start()) {
            assertEquals("192.0.2.1", address(DnsClient.udp(proxy.port(), DnsClient.query("patient.example."))));
            assertEquals(0, proxy.count("dotproxy.upstream.hedges"));
        }
    }

    @Test
    void matchingSpkiPinOrBackupPinIsAccepted() throws Exception {
        String right = SpkiPins.pin(GOOD.certificate());
        String other = SpkiPins.pin(CA.issue(List.of("x.test"), List.of()).certificate());
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).pins(Set.of(other, right)).start()) {
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("pinned.example.")).getRcode());
        }
    }

    @Test
    void spkiPinMismatchIsAHardFailureForThatUpstream() throws Exception {
        String other = SpkiPins.pin(CA.issue(List.of("x.test"), List.of()).certificate());
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).pins(Set.of(other)).start()) {
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("pinned.example.")).getRcode());
            assertTrue(upstream.queries().isEmpty(), "no query written on an unpinned connection");
            assertEquals(1, proxy.count("dotproxy.upstream.errors", "result", "tls"));
            assertEquals(UpstreamHealth.State.DOWN, proxy.group().members().get(0).health().state());
        }
    }
}
