package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/** Queries through the whole proxy to an in-process DoT resolver, checking both sides. */
class ForwardingTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued CERT = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1"));
    private static final Duration TIMEOUT = Duration.ofSeconds(2);

    static Message send(String transport, int port, Message query) throws IOException {
        return transport.equals("udp") ? DnsClient.udp(port, query) : DnsClient.tcp(port, query);
    }

    @ParameterizedTest
    @ValueSource(strings = {"udp", "tcp"})
    void answerReachesTheClientWithItsOwnIdAndTheQuestionReachesTheUpstreamIntact(String transport) throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream)) {
            Message query = DnsClient.query("www.Example.com.", Type.A, 1232);

            Message answer = send(transport, proxy.port(), query);

            assertEquals(query.getHeader().getID(), answer.getHeader().getID());
            assertEquals(Rcode.NOERROR, answer.getRcode());
            assertTrue(answer.getHeader().getFlag(Flags.QR));
            assertEquals(query.getQuestion(), answer.getQuestion());
            assertEquals("192.0.2.1", ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress());
            assertEquals(1, upstream.queries().size());
            Message seen = upstream.queries().get(0);
            assertEquals(query.getQuestion(), seen.getQuestion());
            assertEquals("www.Example.com.", seen.getQuestion().getName().toString(), "case kept as sent");
            assertNotNull(seen.getOPT(), "EDNS passed on");
            assertTrue(seen.getHeader().getFlag(Flags.RD));
            assertEquals(1, proxy.count("dotproxy.server.queries", "proto", transport));
            assertEquals(1, proxy.count("dotproxy.server.responses", "proto", transport, "rcode", "NOERROR"));
        }
    }

    @Test
    void concurrentQueriesWithTheSameClientIdGetDistinctUpstreamIdsAndTheirOwnAnswers() throws IOException {
        FakeUpstream.Behaviour slow = (query, connection) -> new FakeUpstream.Answer(
                FakeUpstream.answerA(query, "192.0.2." + query.getQuestion().getName().getLabelString(0).substring(1)),
                Duration.ofMillis(300));
        try (FakeUpstream upstream = FakeUpstream.start(CERT, slow);
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream);
             DnsClient.Tcp client = new DnsClient.Tcp(proxy.port())) {
            int queries = 20;
            for (int i = 1; i <= queries; i++) {
                Message query = DnsClient.query("h" + i + ".example.", Type.A, 0);
                query.getHeader().setID(4242);
                client.send(query.toWire());
            }
            Set<String> names = new HashSet<>();
            for (int i = 0; i < queries; i++) {
                Message answer = new Message(client.receive());
                assertEquals(4242, answer.getHeader().getID());
                String label = answer.getQuestion().getName().getLabelString(0);
                String address = ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress();
                assertEquals("192.0.2." + label.substring(1), address, "answer matched to its own question");
                names.add(label);
            }
            assertEquals(queries, names.size());
            Set<Integer> upstreamIds = new HashSet<>();
            upstream.queries().forEach(q -> upstreamIds.add(q.getHeader().getID()));
            assertEquals(queries, upstreamIds.size(), "one upstream ID per query in flight");
            assertEquals(1, upstream.connectionsAccepted(), "pipelined on one connection");
        }
    }

    @Test
    void pipelinedTcpQueriesAreAnsweredAsSoonAsEachIsReady() throws IOException {
        FakeUpstream.Behaviour slowFirst = (query, connection) -> new FakeUpstream.Answer(
                FakeUpstream.answerA(query, "192.0.2.9"),
                query.getQuestion().getName().toString().startsWith("slow") ? Duration.ofMillis(400) : Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, slowFirst);
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream);
             DnsClient.Tcp client = new DnsClient.Tcp(proxy.port())) {
            Message slow = DnsClient.query("slow.example.");
            Message fast = DnsClient.query("fast.example.");
            client.send(slow.toWire());
            client.send(fast.toWire());

            Message first = new Message(client.receive());
            Message second = new Message(client.receive());

            assertEquals(fast.getHeader().getID(), first.getHeader().getID());
            assertEquals("fast.example.", first.getQuestion().getName().toString());
            assertEquals(slow.getHeader().getID(), second.getHeader().getID());
            assertEquals("slow.example.", second.getQuestion().getName().toString());
        }
    }

    @Test
    void clientThatHalfClosesGetsEveryAnswerAndThenACleanEndOfStream() throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream);
             DnsClient.Tcp client = new DnsClient.Tcp(proxy.port())) {
            Set<Integer> ids = new HashSet<>();
            for (int i = 0; i < 3; i++) {
                Message query = DnsClient.query("half" + i + ".example.");
                ids.add(query.getHeader().getID());
                client.send(query.toWire());
            }
            client.socket().shutdownOutput();
            Set<Integer> answered = new HashSet<>();
            for (int i = 0; i < 3; i++) {
                answered.add(new Message(client.receive()).getHeader().getID());
            }
            assertEquals(ids, answered);
            assertEquals(-1, client.socket().getInputStream().read(), "closed after the last answer, nothing more");
        }
    }

    @Test
    void udpAnswerLargerThanTheClientAcceptsIsTruncatedAndTheTcpRetryGetsItAll() throws IOException {
        FakeUpstream.Behaviour big = (query, connection) ->
                new FakeUpstream.Answer(FakeUpstream.answerTxt(query, 10, 200), Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, big);
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream)) {
            Message plain = DnsClient.query("big.example.", Type.TXT, 0);
            Message overUdp = DnsClient.udp(proxy.port(), plain);
            assertTrue(overUdp.getHeader().getFlag(Flags.TC));
            assertEquals(plain.getHeader().getID(), overUdp.getHeader().getID());
            assertEquals(plain.getQuestion(), overUdp.getQuestion());
            assertTrue(overUdp.getSection(Section.ANSWER).isEmpty());
            assertTrue(overUdp.toWire().length <= 512);
            assertNull(overUdp.getOPT(), "no OPT for a client without EDNS");

            Message edns = DnsClient.query("big.example.", Type.TXT, 4096);
            Message capped = DnsClient.udp(proxy.port(), edns);
            assertTrue(capped.getHeader().getFlag(Flags.TC), "4096 advertised, but answers stop at 1232");
            assertNotNull(capped.getOPT(), "EDNS client keeps its OPT");

            Message overTcp = DnsClient.tcp(proxy.port(), plain);
            assertFalse(overTcp.getHeader().getFlag(Flags.TC));
            assertEquals(10, overTcp.getSection(Section.ANSWER).size());
            assertEquals(2, proxy.count("dotproxy.server.truncated", "proto", "udp"));
        }
    }

    @Test
    void udpAnswerFitsAnAdvertisedEdnsSizeButNotTheClassic512() throws IOException {
        FakeUpstream.Behaviour medium = (query, connection) ->
                new FakeUpstream.Answer(FakeUpstream.answerTxt(query, 4, 200), Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, medium);
             ProxyHarness proxy = ProxyHarness.start(CA, TIMEOUT, upstream)) {
            Message withEdns = DnsClient.udp(proxy.port(), DnsClient.query("m.example.", Type.TXT, 1232));
            assertFalse(withEdns.getHeader().getFlag(Flags.TC));
            assertEquals(4, withEdns.getSection(Section.ANSWER).size());

            Message tiny = DnsClient.udp(proxy.port(), DnsClient.query("m.example.", Type.TXT, 100));
            assertTrue(tiny.getHeader().getFlag(Flags.TC), "a size below 512 counts as 512");

            Message without = DnsClient.udp(proxy.port(), DnsClient.query("m.example.", Type.TXT, 0));
            assertTrue(without.getHeader().getFlag(Flags.TC));
        }
    }
}
