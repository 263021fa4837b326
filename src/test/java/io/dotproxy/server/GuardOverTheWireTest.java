package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.guard.RateLimiter;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.ExtendedErrorCodeOption;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * The guard in the assembled proxy, seen from both sides: what a client outside the allow-list or
 * over its rate gets over UDP and TCP, and that none of it reaches the upstream.
 */
class GuardOverTheWireTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued CERT = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of());

    @Test
    void aClientOutsideTheAllowListIsRefusedWithProhibitedAndNothingGoesUpstream() throws IOException {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).allow(List.of("10.0.0.0/8")).start()) {
            for (String transport : List.of("udp", "tcp")) {
                Message query = DnsClient.query("outsider.example.", Type.A, 1232);
                Message answer = transport.equals("udp") ? DnsClient.udp(proxy.port(), query) : DnsClient.tcp(proxy.port(), query);
                assertEquals(Rcode.REFUSED, answer.getRcode(), transport);
                assertEquals(query.getQuestion(), answer.getQuestion());
                ExtendedErrorCodeOption ede = (ExtendedErrorCodeOption) answer.getOPT()
                        .getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).get(0);
                assertEquals(ExtendedErrorCodeOption.PROHIBITED, ede.getErrorCode());
                assertEquals(1, proxy.count("dotproxy.guard.denied", "proto", transport, "result", "not_allowed"));
            }
            assertTrue(upstream.queries().isEmpty(), "nothing of a refused client reaches the upstream");
            assertEquals(0, proxy.inFlight());
        }
    }

    @Test
    void aClientOverItsRateIsDroppedOrSlippedOverUdpAndRefusedOverTcp() throws Exception {
        RateLimiter.Settings limit = new RateLimiter.Settings(0.001, 5, Duration.ofSeconds(30), Duration.ofSeconds(60), 2,
                32, 64, 1000);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).rateLimit(limit).start();
             DatagramSocket socket = new DatagramSocket(new InetSocketAddress("127.0.0.1", 0))) {
            socket.setSoTimeout(300);
            InetSocketAddress server = new InetSocketAddress("127.0.0.1", proxy.port());
            int answered = 0;
            int slipped = 0;
            int unanswered = 0;
            for (int i = 0; i < 15; i++) {
                Message answer = exchange(socket, server, DnsClient.query("q" + i + ".example."));
                if (answer == null) {
                    unanswered++;
                } else if (answer.getHeader().getFlag(Flags.TC)) {
                    assertEquals(0, answer.getSection(Section.ANSWER).size(), "an empty TC=1 answer");
                    slipped++;
                } else {
                    answered++;
                }
            }
            assertEquals(5, answered, "the burst, then the limit (a token takes 1,000 s)");
            assertEquals(5, slipped, "every second limited query slips");
            assertEquals(5, unanswered, "the others are dropped");
            assertEquals(5, upstream.queries().size(), "only admitted queries go upstream");

            Message overTcp = DnsClient.tcp(proxy.port(), DnsClient.query("tcp.example.", Type.A, 1232));
            assertEquals(Rcode.REFUSED, overTcp.getRcode(), "a TCP client proved its address: it is told");
            assertEquals(11, proxy.count("dotproxy.guard.denied", "result", "rate_limited"));
            assertEquals(5, proxy.count("dotproxy.server.slipped", "proto", "udp"));
            assertEquals(5, proxy.count("dotproxy.server.dropped", "proto", "udp", "result", "not_admitted"));
            assertEquals(0, proxy.inFlight());
        }
    }

    /** One query and its answer over {@code socket}, or null when none came in time. */
    private static Message exchange(DatagramSocket socket, InetSocketAddress server, Message query) throws IOException {
        byte[] wire = query.toWire();
        socket.send(new DatagramPacket(wire, wire.length, server));
        byte[] answer = DnsClient.receive(socket);
        return answer == null ? null : new Message(answer);
    }
}
