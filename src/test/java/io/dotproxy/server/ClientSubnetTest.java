package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.InetAddress;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.ClientSubnetOption;
import org.xbill.DNS.CookieOption;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.Message;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * EDNS Client Subnet (RFC 7871) through the whole proxy, over UDP and TCP: what reached the
 * upstream, and what the client got back from an upstream that echoes the subnet it saw.
 */
class ClientSubnetTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued CERT = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1"));
    private static final EDNSOption COOKIE = new CookieOption(new byte[] {8, 7, 6, 5, 4, 3, 2, 1});

    /** Answers 192.0.2.1 and echoes the query's ECS options with a scope of 24, as a resolver that uses them does. */
    private static final FakeUpstream.Behaviour ECHOING = (query, connection) -> {
        Message answer = FakeUpstream.answerA(query, "192.0.2.1");
        List<EDNSOption> echoed = query.getOPT() == null ? List.of()
                : query.getOPT().getOptions(EDNSOption.Code.CLIENT_SUBNET).stream()
                        .map(o -> (EDNSOption) new ClientSubnetOption(((ClientSubnetOption) o).getSourcePrefixLength(), 24,
                                ((ClientSubnetOption) o).getAddress()))
                        .toList();
        answer.removeAllRecords(Section.ADDITIONAL);
        answer.addRecord(new OPTRecord(1232, 0, 0, 0, echoed), Section.ADDITIONAL);
        return new FakeUpstream.Answer(answer, Duration.ZERO);
    };

    private static List<EDNSOption> subnets(Message message) {
        return message.getOPT().getOptions(EDNSOption.Code.CLIENT_SUBNET);
    }

    @ParameterizedTest(name = "{0} over {1}")
    @CsvSource({"strip, udp", "strip, tcp", "pass, udp", "pass, tcp"})
    void theClientSubnetReachesNeitherTheUpstreamNorTheClientUnlessPassed(String ecs, String transport)
            throws IOException {
        boolean strip = ecs.equals("strip");
        try (FakeUpstream upstream = FakeUpstream.start(CERT, ECHOING);
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).timeout(Duration.ofSeconds(2))
                     .stripClientSubnet(strip).start()) {
            Message query = DnsClient.query(ecs + "-" + transport + ".example.", Type.A, 0);
            query.addRecord(new OPTRecord(1232, 0, 0, 0,
                    List.of(new ClientSubnetOption(24, InetAddress.getByName("10.244.1.0")), COOKIE)), Section.ADDITIONAL);

            Message answer = ForwardingTest.send(transport, proxy.port(), query);

            assertEquals("192.0.2.1", ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress());
            Message seen = upstream.queries().get(0);
            assertEquals(query.getQuestion(), seen.getQuestion());
            assertTrue(seen.getOPT().getOptions().contains(COOKIE), "the other options go on");
            assertEquals(strip ? 0 : 1, subnets(seen).size(), "ECS upstream");
            assertEquals(strip ? 0 : 1, subnets(answer).size(), "ECS back to the client");
            assertEquals(strip ? 1 : 0, proxy.count("dotproxy.server.client.subnet.stripped", "proto", transport));
        }
    }
}
