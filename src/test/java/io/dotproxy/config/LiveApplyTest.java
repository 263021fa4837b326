package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.guard.AddressSet;
import io.dotproxy.guard.Guard;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.UpstreamAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * New settings applied to the running proxy, as a reload will apply them: what takes effect at the
 * next query, and what waits for a restart and says so.
 */
class LiveApplyTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued CERT = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1"));
    private static final Duration TIMEOUT = Duration.ofSeconds(2);

    private static ProxySettings withGuard(ProxySettings settings, List<String> allow) {
        Guard.Settings guard = settings.guard();
        return new ProxySettings(settings.listen(), new Guard.Settings(AddressSet.parse(allow), guard.dropRefusedUdp(),
                guard.rateLimit(), guard.exempt()), settings.pipeline(), settings.cache(), settings.forwarding());
    }

    @Test
    void anAllowListChangeTakesEffectAtTheNextQueryAndBack() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream)) {
            ProxySettings original = proxy.settings();
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("before.example.")).getRcode());

            ProxyRuntime.Applied applied = proxy.apply(withGuard(original, List.of("10.0.0.0/8")));

            assertEquals(Set.of(SettingsChange.Part.GUARD), applied.change().changed());
            assertEquals(List.of(), applied.needsRestart(), "the guard changes live");
            assertEquals(Rcode.REFUSED, DnsClient.udp(proxy.port(), DnsClient.query("during.example.")).getRcode());
            assertEquals(1, upstream.queries().size(), "a refused query never reaches the upstream");

            proxy.apply(original);

            assertEquals(Rcode.NOERROR, DnsClient.tcp(proxy.port(), DnsClient.query("after.example.")).getRcode());
            assertEquals(2, upstream.queries().size());
        }
    }

    @Test
    void aLargerUdpCapTakesEffectAtTheNextQuery() throws Exception {
        FakeUpstream.Behaviour big = (query, connection) -> new FakeUpstream.Answer(
                FakeUpstream.answerTxt(query, 8, 200), Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, big);
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream)) {
            Message cut = DnsClient.udp(proxy.port(), DnsClient.query("big.example.", Type.TXT, 4096));
            assertTrue(cut.getHeader().getFlag(Flags.TC), "over the 1,232-octet cap: truncated");
            ProxySettings settings = proxy.settings();
            QueryPipeline.Settings pipeline = settings.pipeline();

            proxy.apply(new ProxySettings(settings.listen(), settings.guard(), new QueryPipeline.Settings(
                    pipeline.timeout(), 4096, pipeline.maxInFlight(), pipeline.stripClientSubnet()),
                    settings.cache(), settings.forwarding()));

            Message whole = DnsClient.udp(proxy.port(), DnsClient.query("big.example.", Type.TXT, 4096));
            assertFalse(whole.getHeader().getFlag(Flags.TC));
            assertEquals(8, whole.getSection(Section.ANSWER).size());
        }
    }

    private static ProxySettings withResolvers(ProxySettings settings, FakeUpstream... upstreams) {
        ProxySettings.Forwarding forwarding = settings.forwarding();
        List<DotResolver> dot = new ArrayList<>();
        for (FakeUpstream upstream : upstreams) {
            dot.add(new DotResolver(UpstreamAddress.parse("127.0.0.1:" + upstream.port() + "#" + ProxyHarness.TLS_NAME, 853),
                    Set.of()));
        }
        return new ProxySettings(settings.listen(), settings.guard(), settings.pipeline(), settings.cache(),
                new ProxySettings.Forwarding(dot, forwarding.policy(), forwarding.fallback(), forwarding.fallbackMaxInFlight(),
                        forwarding.caFile(), forwarding.connections(), forwarding.group(), forwarding.probing()));
    }

    private static String name(FakeUpstream upstream) {
        return "127.0.0.1:" + upstream.port() + "#" + ProxyHarness.TLS_NAME;
    }

    @Test
    void aNewResolverListTakesTheNextQueriesAndTheRemovedResolverRetiresAfterTheDeadline() throws Exception {
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             FakeUpstream second = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, first)) {
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("one.example.")).getRcode());
            assertEquals(1, first.queries().size());
            assertEquals(1, proxy.count("dotproxy.upstream.requests", "upstream", name(first), "result", "answered"));

            ProxyRuntime.Applied applied = proxy.apply(withResolvers(proxy.settings(), second));

            assertEquals(List.of(), applied.needsRestart(), "the resolver list changes live");
            assertEquals(List.of(name(second)), proxy.group().members().stream().map(m -> m.name()).toList());
            for (int i = 0; i < 3; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.tcp(proxy.port(), DnsClient.query("two" + i + ".example.")).getRcode());
            }
            assertEquals(1, first.queries().size(), "no new query for the removed resolver");
            assertEquals(3, second.queries().size());
            assertTrue(Eventually.holds(TIMEOUT.plusSeconds(5), Duration.ofMillis(100),
                    () -> proxy.registry().find("dotproxy.upstream.requests").tag("upstream", name(first))
                            .functionCounters().isEmpty()), "the removed resolver's meters go once it is retired");
            assertEquals(3, proxy.count("dotproxy.upstream.requests", "upstream", name(second), "result", "answered"));
        }
    }

    @Test
    void aResolverThatStaysKeepsItsConnection() throws Exception {
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             FakeUpstream second = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(first).poolSize(1).start()) {
            DnsClient.udp(proxy.port(), DnsClient.query("before.example."));
            int handshakes = first.handshakesCompleted();

            proxy.apply(withResolvers(proxy.settings(), first, second));
            for (int i = 0; i < 5; i++) {
                DnsClient.udp(proxy.port(), DnsClient.query("after" + i + ".example."));
            }

            assertEquals(6, first.queries().size(), "failover policy: the first resolver still answers");
            assertEquals(handshakes, first.handshakesCompleted(), "no new TLS handshake: the same connection");
            assertEquals(2, proxy.group().members().size());
        }
    }

    @Test
    void anotherPolicyTakesEffectAtTheNextQuery() throws Exception {
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             FakeUpstream second = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(first).upstream(second).start()) {
            for (int i = 0; i < 4; i++) {
                DnsClient.udp(proxy.port(), DnsClient.query("failover" + i + ".example."));
            }
            assertEquals(4, first.queries().size(), "failover: all to the first");
            ProxySettings settings = proxy.settings();
            ProxySettings.Forwarding forwarding = settings.forwarding();

            ProxyRuntime.Applied applied = proxy.apply(new ProxySettings(settings.listen(), settings.guard(),
                    settings.pipeline(), settings.cache(), new ProxySettings.Forwarding(forwarding.dot(), "round-robin",
                            forwarding.fallback(), forwarding.fallbackMaxInFlight(), forwarding.caFile(),
                            forwarding.connections(), forwarding.group(), forwarding.probing())));
            for (int i = 0; i < 4; i++) {
                DnsClient.udp(proxy.port(), DnsClient.query("round" + i + ".example."));
            }

            assertEquals(List.of(), applied.needsRestart());
            assertEquals("round-robin", proxy.settings().forwarding().policy());
            assertEquals(6, first.queries().size(), "round-robin: every other query");
            assertEquals(2, second.queries().size());
        }
    }

    @Test
    void aNewResolverListWithAnotherConnectionTuningIsNotAppliedYetAndSaysSo() throws Exception {
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             FakeUpstream second = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, first)) {
            ProxySettings settings = proxy.settings();
            ProxySettings moved = withResolvers(settings, second);
            ProxySettings.Forwarding forwarding = moved.forwarding();
            DotUpstream.Settings tuning = forwarding.connections();
            ProxySettings next = new ProxySettings(moved.listen(), moved.guard(), moved.pipeline(), moved.cache(),
                    new ProxySettings.Forwarding(forwarding.dot(), forwarding.policy(), forwarding.fallback(),
                            forwarding.fallbackMaxInFlight(), forwarding.caFile(),
                            new DotUpstream.Settings(tuning.connectTimeout(), tuning.idleTimeout(),
                                    tuning.maxInFlight(), tuning.poolSize() + 1, tuning.handshakesPerSecond(),
                                    tuning.handshakeBurst()),
                            forwarding.group(), forwarding.probing()));

            ProxyRuntime.Applied applied = proxy.apply(next);

            assertEquals(1, applied.needsRestart().size(), applied.needsRestart().toString());
            assertTrue(applied.needsRestart().get(0).startsWith("dotproxy.upstreams"), applied.needsRestart().toString());
            assertEquals(settings, proxy.settings(), "the settings in force are unchanged");
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("still.example.")).getRcode());
            assertEquals(1, first.queries().size(), "still the resolver in force");
            assertEquals(0, second.queries().size());
        }
    }
}
