package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.cache.ResponseCache;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.ExtendedErrorCodeOption;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * The cache seen from both sides of the whole proxy: what clients get, and what still reaches the
 * in-process DoT resolver.
 */
class CachingTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued CERT = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1"));
    private static final Duration TIMEOUT = Duration.ofSeconds(2);

    private static ResponseCache.Settings cache(Duration staleAnswerTimeout) {
        return new ResponseCache.Settings(true, 8 << 20, Duration.ZERO, Duration.ofDays(1), Duration.ofHours(1),
                Duration.ofDays(1), staleAnswerTimeout, 0);
    }

    private static ProxyHarness proxy(FakeUpstream upstream, Duration staleAnswerTimeout) {
        return ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(upstream).cache(cache(staleAnswerTimeout)).start();
    }

    /** An A answer whose record has {@code ttl}. */
    private static FakeUpstream.Behaviour answering(long ttl) {
        return (query, connection) -> {
            Message answer = FakeUpstream.reply(query);
            answer.addRecord(new ARecord(query.getQuestion().getName(), query.getQuestion().getDClass(), ttl,
                    InetAddress.getLoopbackAddress()), Section.ANSWER);
            return new FakeUpstream.Answer(answer, Duration.ZERO);
        };
    }

    private static long ttl(Message answer) {
        return answer.getSection(Section.ANSWER).get(0).getTTL();
    }

    @ParameterizedTest
    @ValueSource(strings = {"udp", "tcp"})
    void aRepeatedQuestionIsAnsweredFromTheCacheWithTheClientsIdAndSpelling(String transport) throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, answering(300));
             ProxyHarness proxy = proxy(upstream, Duration.ofMillis(1800))) {
            Message first = ForwardingTest.send(transport, proxy.port(), DnsClient.query("www.example.com.", Type.A, 1232));
            Message again = DnsClient.query("WWW.Example.COM.", Type.A, 1232);

            Message cached = ForwardingTest.send(transport, proxy.port(), again);

            assertEquals(1, upstream.queries().size(), "only the first went upstream");
            assertEquals(again.getHeader().getID(), cached.getHeader().getID());
            assertEquals("WWW.Example.COM.", cached.getQuestion().getName().toString(), "the client's own spelling");
            assertEquals(first.getSection(Section.ANSWER).get(0).rdataToString(),
                    cached.getSection(Section.ANSWER).get(0).rdataToString());
            assertTrue(ttl(cached) <= 300 && ttl(cached) >= 298, "aged, not reset: " + ttl(cached));
            assertEquals(1, proxy.count("dotproxy.cache.hits"));
            assertEquals(1, proxy.count("dotproxy.cache.misses"));
            assertEquals(1, proxy.count("dotproxy.cache.stores", "result", "positive"));
        }
    }

    @Test
    void aQueryOfAnotherTypeOrWithDnssecOkIsNotAnsweredWithTheCachedAnswer() throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, answering(300));
             ProxyHarness proxy = proxy(upstream, Duration.ofMillis(1800))) {
            DnsClient.udp(proxy.port(), DnsClient.query("keyed.example.", Type.A, 1232));
            DnsClient.udp(proxy.port(), DnsClient.query("keyed.example.", Type.AAAA, 1232));
            Message dnssecOk = DnsClient.query("keyed.example.", Type.A, 0);
            dnssecOk.addRecord(new org.xbill.DNS.OPTRecord(1232, 0, 0, org.xbill.DNS.ExtendedFlags.DO), Section.ADDITIONAL);
            DnsClient.udp(proxy.port(), dnssecOk);
            DnsClient.udp(proxy.port(), DnsClient.query("keyed.example.", Type.A, 0)); // no EDNS at all

            assertEquals(4, upstream.queries().size(), "four different keys");
            DnsClient.udp(proxy.port(), DnsClient.query("keyed.example.", Type.A, 4096));
            assertEquals(4, upstream.queries().size(), "the payload size is not part of the key");
        }
    }

    @Test
    void identicalQueriesInFlightAtOnceGoUpstreamOnceAndEachClientGetsItsOwnAnswer() throws Exception {
        FakeUpstream.Behaviour slow = (query, connection) -> new FakeUpstream.Answer(
                FakeUpstream.answerA(query, "192.0.2.7"), Duration.ofMillis(500));
        try (FakeUpstream upstream = FakeUpstream.start(CERT, slow);
             ProxyHarness proxy = proxy(upstream, Duration.ofMillis(1800));
             DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            socket.setSoTimeout(3000);
            int clients = 100;
            Map<Integer, String> spellings = new HashMap<>();
            for (int i = 0; i < clients; i++) {
                String name = i % 2 == 0 ? "same.example." : "SAME.example.";
                Message query = DnsClient.query(name, Type.A, 1232);
                query.getHeader().setID(1000 + i);
                spellings.put(1000 + i, name);
                byte[] wire = query.toWire();
                socket.send(new DatagramPacket(wire, wire.length, InetAddress.getLoopbackAddress(), proxy.port()));
            }
            byte[] buffer = new byte[1232];
            for (int i = 0; i < clients; i++) {
                DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
                socket.receive(packet);
                Message answer = new Message(Arrays.copyOf(buffer, packet.getLength()));
                String expected = spellings.remove(answer.getHeader().getID());
                assertNotNull(expected, "an answer for a query not yet answered: " + answer.getHeader().getID());
                assertEquals(expected, answer.getQuestion().getName().toString());
                assertEquals("192.0.2.7", ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress());
            }
            assertTrue(spellings.isEmpty());
            assertEquals(1, upstream.queries().size(), "one upstream query for 100 identical ones");
            assertEquals(clients - 1, proxy.count("dotproxy.cache.coalesced"));
        }
    }

    @Test
    void anExpiredAnswerIsServedStaleWhileTheUpstreamIsSilentThenFreshOnceItIsBack() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, answering(1));
             ProxyHarness proxy = proxy(upstream, Duration.ofMillis(300))) {
            Message query = DnsClient.query("stale.example.", Type.A, 1232);
            assertEquals(1, ttl(DnsClient.udp(proxy.port(), query)));
            Thread.sleep(1100); // past its TTL
            upstream.behave((q, connection) -> new FakeUpstream.Silence());

            long started = System.nanoTime();
            Message stale = DnsClient.udp(proxy.port(), DnsClient.query("stale.example.", Type.A, 1232));
            long waitedMillis = (System.nanoTime() - started) / 1_000_000;

            assertEquals(Rcode.NOERROR, stale.getRcode());
            assertEquals(30, ttl(stale), "RFC 8767's TTL for stale answers");
            assertEquals(List.of(3), extendedErrors(stale), "EDE 3, Stale Answer");
            assertTrue(waitedMillis >= 250 && waitedMillis < TIMEOUT.toMillis(), "after the stale-answer timeout: " + waitedMillis);
            assertEquals(1, proxy.count("dotproxy.cache.stale.answers"));

            upstream.behave(answering(300));
            assertTrue(Eventually.holds(Duration.ofSeconds(5), Duration.ofMillis(100), () -> {
                Message answer = DnsClient.udp(proxy.port(), DnsClient.query("stale.example.", Type.A, 1232));
                return ttl(answer) > 30 && extendedErrors(answer).isEmpty();
            }), "fresh answers once the upstream answers again");
        }
    }

    @Test
    void anExpiredAnswerIsServedStaleAtOnceWhenTheUpstreamAnswersServfail() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, answering(1));
             ProxyHarness proxy = proxy(upstream, Duration.ofMillis(1800))) {
            DnsClient.tcp(proxy.port(), DnsClient.query("fails.example.", Type.A, 1232));
            Thread.sleep(1100);
            upstream.behave(FakeUpstream.servfail());

            Message stale = DnsClient.tcp(proxy.port(), DnsClient.query("fails.example.", Type.A, 1232));

            assertEquals(Rcode.NOERROR, stale.getRcode());
            assertEquals(30, ttl(stale));
            assertEquals(List.of(3), extendedErrors(stale));
            Message noStaleEntry = DnsClient.tcp(proxy.port(), DnsClient.query("other.example.", Type.A, 1232));
            assertEquals(Rcode.SERVFAIL, noStaleEntry.getRcode(), "nothing to serve stale: the upstream's SERVFAIL");
        }
    }

    @Test
    void withTheCacheOffEveryQueryGoesUpstream() throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, answering(300));
             ProxyHarness proxy = ProxyHarness.builder(CA).timeout(TIMEOUT).upstream(upstream).start()) {
            for (int i = 0; i < 3; i++) {
                DnsClient.udp(proxy.port(), DnsClient.query("off.example.", Type.A, 1232));
            }
            assertEquals(3, upstream.queries().size());
            assertEquals(0, proxy.count("dotproxy.cache.hits"));
        }
    }

    private static List<Integer> extendedErrors(Message answer) {
        if (answer.getOPT() == null) {
            return List.of();
        }
        return answer.getOPT().getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).stream()
                .map(option -> ((ExtendedErrorCodeOption) option).getErrorCode()).toList();
    }
}
