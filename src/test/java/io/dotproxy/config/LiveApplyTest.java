package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.guard.AddressSet;
import io.dotproxy.guard.Guard;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.UpstreamAddress;
import java.time.Duration;
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

    @Test
    void anUpstreamChangeIsNotAppliedYetAndSaysSo() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream)) {
            ProxySettings settings = proxy.settings();
            ProxySettings.Forwarding forwarding = settings.forwarding();
            ProxySettings next = new ProxySettings(settings.listen(), settings.guard(), settings.pipeline(), settings.cache(),
                    new ProxySettings.Forwarding(List.of(new DotResolver(UpstreamAddress.parse("192.0.2.9#" + ProxyHarness.TLS_NAME,
                            853), Set.of())), forwarding.policy(), forwarding.fallback(), forwarding.fallbackMaxInFlight(),
                            forwarding.caFile(), forwarding.connections(), forwarding.group(), forwarding.probing()));

            ProxyRuntime.Applied applied = proxy.apply(next);

            assertEquals(List.of("dotproxy.upstreams"), applied.needsRestart());
            assertEquals(settings, proxy.settings(), "the settings in force are unchanged");
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("still.example.")).getRcode());
            assertEquals(1, upstream.queries().size(), "still the upstream in force");
        }
    }
}
