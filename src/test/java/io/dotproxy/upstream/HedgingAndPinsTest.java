package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
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
            assertEquals(0, proxy.inFlight(), "answered, though the losing attempt is still out");
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

    /** A certificate on the validated path, from the resolver's own up to the trust anchor. */
    enum PathPosition { LEAF, INTERMEDIATE, ANCHOR }

    @ParameterizedTest
    @EnumSource(PathPosition.class)
    void pinOnAnyCertificateOfTheValidatedPathIsAccepted(PathPosition pinned) throws Exception {
        TestCa intermediate = CA.intermediate("dot-proxy test intermediate");
        TestCa.Issued leaf = intermediate.issue(List.of(ProxyHarness.TLS_NAME), List.of());
        X509Certificate certificate = switch (pinned) {
            case LEAF -> leaf.certificate();
            case INTERMEDIATE -> intermediate.certificate();
            case ANCHOR -> CA.certificate(); // known to the proxy as trusted; the server does not send it
        };
        try (FakeUpstream upstream = FakeUpstream.start(leaf, List.of(intermediate.certificate()), FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).pins(Set.of(SpkiPins.pin(certificate))).start()) {
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("pinned.example.")).getRcode(),
                    "the pinned " + pinned + " is on the validated path");
            assertEquals(1, upstream.queries().size());
            assertEquals(0, proxy.count("dotproxy.upstream.errors", "result", "pin"));
        }
    }

    /** What a server holding some valid certificate for the name appends to its chain to match the pin. */
    enum Appended {
        /** The pinned resolver's own certificate: public, issued by the same trusted CA. */
        PINNED_RESOLVERS_CERTIFICATE,
        /** A CA the proxy does not trust. */
        UNTRUSTED_CA
    }

    @ParameterizedTest
    @EnumSource(Appended.class)
    void pinnedCertificateAppendedOffTheValidatedPathIsRefused(Appended appended) throws Exception {
        X509Certificate extra = switch (appended) {
            case PINNED_RESOLVERS_CERTIFICATE -> CA.issue(List.of("resolver.test"), List.of()).certificate();
            case UNTRUSTED_CA -> TestCa.create("untrusted CA").certificate();
        };
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, List.of(extra), FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).pins(Set.of(SpkiPins.pin(extra))).start()) {
            awaitConnectionOpenedAheadRefused(proxy);
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("pinned.example.")).getRcode(),
                    "the pinned key is not on the validated path: the upstream must be refused");
            assertTrue(upstream.queries().isEmpty(), "no query written on an unpinned connection");
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(10), () -> upstream.handshakesCompleted() >= 1),
                    "the chain itself passed validation: the pin check is what refused it");
            assertEquals(2, proxy.count("dotproxy.upstream.errors", "result", "pin"), "ahead, and the query's own attempt");
            assertEquals(0, proxy.count("dotproxy.upstream.errors", "result", "tls"));
            assertEquals(1, proxy.count("dotproxy.upstream.requests", "result", "tls"), "the query failed as on a TLS failure");
        }
    }

    @Test
    void validatedPathRunsFromTheLeafToTheAnchorAndLeavesOutWhatIsOffIt(@TempDir Path dir) throws Exception {
        TlsClientContext tls = TlsClientContext.create(Optional.of(CA.writePem(dir.resolve("ca.pem"))));
        TestCa intermediate = CA.intermediate("dot-proxy test intermediate");
        TestCa.Issued leaf = intermediate.issue(List.of(ProxyHarness.TLS_NAME), List.of());
        X509Certificate untrusted = TestCa.create("untrusted CA").certificate();
        X509Certificate otherLeaf = CA.issue(List.of("resolver.test"), List.of()).certificate();

        assertEquals(List.of(GOOD.certificate(), CA.certificate()),
                tls.validatedPath(new Certificate[] {GOOD.certificate(), untrusted, otherLeaf}));
        assertEquals(List.of(leaf.certificate(), intermediate.certificate(), CA.certificate()),
                tls.validatedPath(new Certificate[] {leaf.certificate(), otherLeaf, intermediate.certificate(), untrusted}),
                "the intermediate is found wherever the server put it");
        assertEquals(List.of(CA.certificate()), tls.validatedPath(new Certificate[] {CA.certificate()}),
                "a trusted certificate is a path by itself");
        assertThrows(GeneralSecurityException.class, () -> tls.validatedPath(new Certificate[] {leaf.certificate()}),
                "without its intermediate the leaf links to no anchor");
        assertThrows(GeneralSecurityException.class,
                () -> tls.validatedPath(new Certificate[] {TestCa.create("untrusted CA").issue(List.of(ProxyHarness.TLS_NAME),
                        List.of()).certificate(), CA.certificate()}), "a trusted certificate sent along makes no path");
    }

    @Test
    void spkiPinMismatchIsAHardFailureForThatUpstream() throws Exception {
        String other = SpkiPins.pin(CA.issue(List.of("x.test"), List.of()).certificate());
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).pins(Set.of(other)).start()) {
            awaitConnectionOpenedAheadRefused(proxy);
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("pinned.example.")).getRcode());
            assertTrue(upstream.queries().isEmpty(), "no query written on an unpinned connection");
            assertEquals(2, proxy.count("dotproxy.upstream.errors", "result", "pin"), "ahead, and the query's own attempt");
            assertEquals(0, proxy.count("dotproxy.upstream.errors", "result", "tls"));
            assertEquals(UpstreamHealth.State.DOWN, proxy.group().members().get(0).health().state());
        }
    }

    /** The connection opened ahead at start-up is refused first; the query's own attempt comes after. */
    private static void awaitConnectionOpenedAheadRefused(ProxyHarness proxy) throws Exception {
        assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5),
                () -> proxy.count("dotproxy.upstream.errors", "result", "pin") == 1));
    }
}
