package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.cache.ResponseCache;
import io.dotproxy.guard.AddressSet;
import io.dotproxy.guard.Guard;
import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.TcpListener;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakePlainServer;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.UpstreamAddress;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * New settings applied to the running proxy, as a reload will apply them: what takes effect at the
 * next query, without a failed query: new upstreams are connected before they take queries.
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

    private static ProxySettings withForwarding(ProxySettings settings, ProxySettings.Forwarding forwarding) {
        return new ProxySettings(settings.listen(), settings.guard(), settings.pipeline(), settings.cache(), forwarding);
    }

    private static ProxySettings.Forwarding withPoolSize(ProxySettings.Forwarding forwarding, int poolSize) {
        DotUpstream.Settings tuning = forwarding.connections();
        return new ProxySettings.Forwarding(forwarding.dot(), forwarding.policy(), forwarding.fallback(),
                forwarding.fallbackMaxInFlight(), forwarding.caFile(),
                new DotUpstream.Settings(tuning.connectTimeout(), tuning.idleTimeout(), tuning.maxInFlight(), poolSize,
                        tuning.handshakesPerSecond(), tuning.handshakeBurst()),
                forwarding.group(), forwarding.probing());
    }

    @Test
    void newConnectionTuningReplacesTheResolversConnectionsAndItsMetersCarryOn() throws Exception {
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(first).poolSize(1).start()) {
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("before.example.")).getRcode());
            assertEquals(1, first.handshakesCompleted());
            ProxySettings next = withForwarding(proxy.settings(), withPoolSize(proxy.settings().forwarding(), 2));

            ProxyRuntime.Applied applied = proxy.apply(next);

            assertEquals(List.of(), applied.needsRestart(), "connection tuning changes live");
            assertEquals(next, proxy.settings());
            // In TLS 1.3 the client is done before the server has read its Finished: the server's count may lag a moment.
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5), () -> first.handshakesCompleted() == 2),
                    "the resolver's new member connected ahead of its first query");
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("after.example.")).getRcode());
            assertEquals(2, first.queries().size());
            assertEquals(2, first.handshakesCompleted(), "the query took the connection opened ahead");
            // The member it replaced retires after the deadline; the meters under the same name are the new member's.
            Thread.sleep(TIMEOUT.plusMillis(1500).toMillis());
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("later.example.")).getRcode());
            assertEquals(2, proxy.count("dotproxy.upstream.requests", "upstream", name(first), "result", "answered"),
                    "the new member's meters stay when the old one retires");
        }
    }

    @Test
    void aResolverRemovedAndAddedBackAtOnceCountsItsQueriesBeforeAndAfterTheOldMemberRetires() throws Exception {
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             FakeUpstream second = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, first)) {
            ProxySettings original = proxy.settings();
            proxy.apply(withResolvers(original, second));
            proxy.apply(original); // a reverted edit: the first resolver's old member has not retired yet

            for (int i = 0; i < 3; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("back" + i + ".example.")).getRcode());
            }
            assertEquals(3, proxy.count("dotproxy.upstream.requests", "upstream", name(first), "result", "answered"),
                    "the new member counts in meters of its own");
            Thread.sleep(TIMEOUT.plusMillis(1500).toMillis()); // the old member retires
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("later.example.")).getRcode());
            assertEquals(4, proxy.count("dotproxy.upstream.requests", "upstream", name(first), "result", "answered"),
                    "its retirement took none of the new member's meters");
        }
    }

    @Test
    void aNewResolverTakesNoQueryUntilItsConnectionHasSettled() throws Exception {
        // A resolver that accepts TCP but never answers the TLS handshake: it settles at the connect timeout.
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             ServerSocket stalled = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(first).start()) {
            ProxySettings settings = proxy.settings();
            ProxySettings.Forwarding forwarding = settings.forwarding();
            DotResolver slow = new DotResolver(UpstreamAddress.parse(
                    "127.0.0.1:" + stalled.getLocalPort() + "#" + ProxyHarness.TLS_NAME, 853), Set.of());
            List<DotResolver> slowFirst = List.of(slow, forwarding.dot().get(0));

            ProxyRuntime.Applied applied = proxy.applyAsync(withForwarding(settings, new ProxySettings.Forwarding(
                    slowFirst, forwarding.policy(), forwarding.fallback(), forwarding.fallbackMaxInFlight(),
                    forwarding.caFile(), forwarding.connections(), forwarding.group(), forwarding.probing())));
            long started = System.nanoTime();
            for (int i = 0; i < 3; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("meanwhile" + i + ".example.")).getRcode());
            }
            Duration took = Duration.ofNanos(System.nanoTime() - started);

            assertFalse(applied.inForce().isDone(), "still connecting the new resolver");
            assertTrue(took.compareTo(TIMEOUT) < 0, "answered by the group in use, not held by the handshake: " + took);
            assertEquals(3, first.queries().size());
            applied.inForce().get(10, TimeUnit.SECONDS);
            assertEquals(List.of(slow.toString(), name(first)), proxy.group().members().stream().map(m -> m.name()).toList());
        }
    }

    @Test
    void aFallbackAddedLiveAnswersWhileEveryDotUpstreamIsDown() throws Exception {
        int dotPort;
        try (ServerSocket closed = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            dotPort = closed.getLocalPort();
        }
        try (FakePlainServer plain = new FakePlainServer(q -> FakeUpstream.answerA(q, "192.0.2.53"));
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT)
                     .upstream("127.0.0.1:" + dotPort + "#" + ProxyHarness.TLS_NAME)
                     .attemptTimeout(Duration.ofMillis(300)).firstBackOff(Duration.ofMillis(200)).start()) {
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("strict.example.")).getRcode());
            ProxySettings settings = proxy.settings();
            ProxySettings.Forwarding forwarding = settings.forwarding();

            ProxyRuntime.Applied applied = proxy.apply(withForwarding(settings, new ProxySettings.Forwarding(
                    forwarding.dot(), forwarding.policy(), List.of(plain.address()), forwarding.fallbackMaxInFlight(),
                    forwarding.caFile(), forwarding.connections(), forwarding.group(), forwarding.probing())));

            assertEquals(List.of(), applied.needsRestart(), "the fallback changes live");
            Message answer = Eventually.retry(Duration.ofSeconds(5), Duration.ofMillis(50),
                    () -> DnsClient.udp(proxy.port(), DnsClient.query("fallback.example.")),
                    m -> m.getRcode() == Rcode.NOERROR);
            assertEquals(Rcode.NOERROR, answer.getRcode());
            assertTrue(plain.packetsReceived() > 0);

            proxy.apply(settings);

            int before = plain.packetsReceived();
            assertEquals(Rcode.SERVFAIL, DnsClient.udp(proxy.port(), DnsClient.query("strict-again.example.")).getRcode());
            assertEquals(before, plain.packetsReceived(), "no fallback once it is taken out");
        }
    }

    @Test
    void theCacheTurnedOffForwardsEveryQueryAndTurnedOnAgainStartsEmpty() throws Exception {
        ResponseCache.Settings on = new ResponseCache.Settings(true, 1 << 20, Duration.ZERO, Duration.ofDays(1),
                Duration.ofHours(1), Duration.ofDays(1), Duration.ofMillis(1800), 0);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(upstream).cache(on).start()) {
            DnsClient.udp(proxy.port(), DnsClient.query("hot.example."));
            DnsClient.udp(proxy.port(), DnsClient.query("hot.example."));
            assertEquals(1, upstream.queries().size(), "the second was a hit");
            ProxySettings settings = proxy.settings();

            ProxyRuntime.Applied off = proxy.apply(new ProxySettings(settings.listen(), settings.guard(),
                    settings.pipeline(), ProxyHarness.CACHE_OFF, settings.forwarding()));
            DnsClient.udp(proxy.port(), DnsClient.query("hot.example."));

            assertEquals(List.of(), off.needsRestart(), "the cache's settings change live");
            assertEquals(2, upstream.queries().size(), "no cache: to the upstream");
            assertEquals(0, proxy.gauge("dotproxy.cache.entries"), "emptied");

            proxy.apply(settings);
            DnsClient.udp(proxy.port(), DnsClient.query("hot.example."));
            DnsClient.udp(proxy.port(), DnsClient.query("hot.example."));

            assertEquals(3, upstream.queries().size(), "on again: empty at first, then a hit");
        }
    }

    @Test
    void aSmallerCacheKeepsWhatFitsAndAnswersFromIt() throws Exception {
        ResponseCache.Settings big = new ResponseCache.Settings(true, 1 << 20, Duration.ZERO, Duration.ofDays(1),
                Duration.ofHours(1), Duration.ofDays(1), Duration.ofMillis(1800), 0);
        int names = 1500;
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(upstream).cache(big).start()) {
            for (int i = 0; i < names; i++) {
                DnsClient.udp(proxy.port(), DnsClient.query("name" + i + ".example."));
            }
            assertEquals(names, proxy.gauge("dotproxy.cache.entries"));
            ProxySettings settings = proxy.settings();
            long smallest = 64 << 10; // the least dotproxy.cache.max-size: less than these names take

            proxy.apply(new ProxySettings(settings.listen(), settings.guard(), settings.pipeline(),
                    new ResponseCache.Settings(true, smallest, big.minTtl(), big.maxTtl(), big.maxNegativeTtl(),
                            big.maxStale(), big.staleAnswerTimeout(), big.prefetchAfter()), settings.forwarding()));

            double kept = proxy.gauge("dotproxy.cache.entries");
            assertTrue(kept > 0 && kept < names / 2, "what fits in 64 KiB: " + kept);
            assertTrue(proxy.gauge("dotproxy.cache.bytes") <= smallest);
            int asked = upstream.queries().size();
            // Asked again in the same order: the names not kept miss, and (the cache being full, each
            // asked once since) pass the doorkeeper's door without pushing out those kept.
            for (int i = 0; i < names; i++) {
                DnsClient.udp(proxy.port(), DnsClient.query("name" + i + ".example."));
            }
            assertEquals(asked + names - (int) kept, upstream.queries().size(), "the entries kept still answer");
        }
    }

    @Test
    void newClientTcpLimitsApplyToNewConnectionsAndSpareOpenOnes() throws Exception {
        TcpListener.Settings two = new TcpListener.Settings(Duration.ofSeconds(10), 100, 2, Duration.ofSeconds(2), 0,
                Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(upstream).tcp(two).start();
             DnsClient.Tcp open = new DnsClient.Tcp(proxy.port())) {
            assertEquals(Rcode.NOERROR, ask(open, DnsClient.query("first.example.")).getRcode());
            ProxySettings settings = proxy.settings();

            ProxyRuntime.Applied applied = proxy.apply(new ProxySettings(new ProxyServer.Settings(
                    settings.listen().host(), settings.listen().port(), new TcpListener.Settings(two.idleTimeout(),
                    two.maxConnections(), 1, two.frameTimeout(), two.maxQueries(), two.maxAge()), settings.listen().drainDelay(),
                    settings.listen().eventLoops()),
                    settings.guard(), settings.pipeline(), settings.cache(), settings.forwarding()));

            assertEquals(List.of(), applied.needsRestart(), "client TCP limits change live");
            try (DnsClient.Tcp second = new DnsClient.Tcp(proxy.port())) {
                assertTrue(second.closedByServer(), "a second connection from this client is over the new limit of one");
            }
            assertEquals(Rcode.NOERROR, ask(open, DnsClient.query("again.example.")).getRcode(), "the open one serves on");
        }
    }

    private static Message ask(DnsClient.Tcp connection, Message query) throws IOException {
        connection.send(query.toWire());
        return new Message(connection.receive());
    }
}
