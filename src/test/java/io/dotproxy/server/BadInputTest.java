package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.xbill.DNS.Message;
import org.xbill.DNS.Opcode;
import org.xbill.DNS.Rcode;

/** Broken and unexpected input: each gets a clear answer or a counted drop, and serving goes on. */
class BadInputTest {
    private static final TestCa CA = TestCa.create();
    private static FakeUpstream upstream;
    private static ProxyHarness proxy;

    @BeforeAll
    static void start() {
        upstream = FakeUpstream.start(CA.issue(List.of(ProxyHarness.TLS_NAME), List.of()), FakeUpstream.answering());
        proxy = ProxyHarness.start(CA, Duration.ofSeconds(2), upstream);
    }

    @AfterAll
    static void stop() {
        proxy.close();
        upstream.close();
    }

    private static byte[] hex(String text) {
        return HexFormat.of().parseHex(text.replace(" ", ""));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        // name, packet (hex), expected rcode
        "name runs past the end,       1234 0100 0001 0000 0000 0000 07 6578616d,                  FORMERR",
        "pointer loop in the question, 1234 0100 0001 0000 0000 0000 c00c 0001 0001,               FORMERR",
        "counts claim more records,    1234 0100 0001 0001 0000 0000 00 0001 0001,                 FORMERR",
        "trailing octets,              1234 0100 0001 0000 0000 0000 00 0001 0001 dead,           FORMERR",
        "reserved label type,          1234 0100 0001 0000 0000 0000 41 61 00 0001 0001,           FORMERR",
        "two questions,                1234 0100 0002 0000 0000 0000 00 0001 0001 00 0001 0001,    FORMERR",
        "no question,                  1234 0100 0000 0000 0000 0000,                              FORMERR",
        "two OPT records,              1234 0100 0001 0000 0000 0002 00 0001 0001 00 0029 1000 00000000 0000 00 0029 1000 00000000 0000, FORMERR",
        "NOTIFY opcode,                1234 2000 0001 0000 0000 0000 00 0006 0001,                 NOTIMP",
    })
    void malformedQueryGetsAnErrorWithItsOwnId(String name, String packet, String rcode) throws IOException {
        for (String transport : List.of("udp", "tcp")) {
            byte[] answer = exchange(transport, hex(packet));
            Message parsed = new Message(answer);
            assertEquals(0x1234, parsed.getHeader().getID(), transport);
            assertEquals(Rcode.value(rcode), parsed.getRcode(), transport);
            assertTrue(parsed.getHeader().getFlag(org.xbill.DNS.Flags.QR), transport);
        }
        assertServingStill();
    }

    private static byte[] exchange(String transport, byte[] packet) throws IOException {
        if (transport.equals("udp")) {
            return DnsClient.udpRaw(proxy.port(), packet, 3000);
        }
        try (DnsClient.Tcp client = new DnsClient.Tcp(proxy.port())) {
            client.send(packet);
            return client.receive();
        }
    }

    @Test
    void datagramShorterThanAHeaderIsDroppedAndCounted() throws IOException {
        double before = proxy.count("dotproxy.server.dropped", "proto", "udp", "result", "short");
        assertNull(DnsClient.udpRaw(proxy.port(), hex("1234 0100 0001"), 300));
        assertEquals(before + 1, proxy.count("dotproxy.server.dropped", "proto", "udp", "result", "short"));
        assertServingStill();
    }

    @Test
    void responseSentAsAQueryIsDroppedSoNoReflectionLoopStarts() throws IOException {
        byte[] response = FakeUpstream.answerA(DnsClient.query("loop.example."), "192.0.2.1").toWire();
        assertNull(DnsClient.udpRaw(proxy.port(), response, 300));
        assertEquals(1, proxy.count("dotproxy.server.dropped", "proto", "udp", "result", "response"));
    }

    @Test
    void tcpConnectionKeepsServingAfterAMalformedMessage() throws IOException {
        try (DnsClient.Tcp client = new DnsClient.Tcp(proxy.port())) {
            client.send(hex("4321 0100 0001 0000 0000 0000 07 6578"));
            assertEquals(Rcode.FORMERR, new Message(client.receive()).getRcode());
            Message query = DnsClient.query("after.example.");
            client.send(query.toWire());
            Message answer = new Message(client.receive());
            assertEquals(query.getHeader().getID(), answer.getHeader().getID());
            assertEquals(Rcode.NOERROR, answer.getRcode());
        }
    }

    @Test
    void udpQueryLongerThanTheReadBufferGetsFormerrWithItsOwnId() throws IOException {
        // Padding makes an otherwise valid query longer: 2,000 octets fit the 2,048-octet read, 2,200 do not.
        Message fits = paddedQuery(0x2001, 1900);
        assertTrue(fits.toWire().length <= 2048);
        assertEquals(Rcode.NOERROR, new Message(DnsClient.udpRaw(proxy.port(), fits.toWire(), 3000)).getRcode());

        Message tooLong = paddedQuery(0x2002, 2200);
        assertTrue(tooLong.toWire().length > 2048);
        Message answer = new Message(DnsClient.udpRaw(proxy.port(), tooLong.toWire(), 3000));
        assertEquals(0x2002, answer.getHeader().getID());
        assertEquals(Rcode.FORMERR, answer.getRcode());
        assertServingStill();
    }

    private static Message paddedQuery(int id, int padding) {
        Message query = DnsClient.query("long.example.");
        query.getHeader().setID(id);
        query.addRecord(new org.xbill.DNS.OPTRecord(1232, 0, 0, 0,
                List.of(new org.xbill.DNS.GenericEDNSOption(12, new byte[padding]))), org.xbill.DNS.Section.ADDITIONAL);
        return query;
    }

    @Test
    void notimpKeepsTheOpcodeOfTheQuery() throws IOException {
        byte[] answer = DnsClient.udpRaw(proxy.port(), hex("1234 2000 0001 0000 0000 0000 00 0006 0001"), 3000);
        assertEquals(Opcode.NOTIFY, new Message(answer).getHeader().getOpcode());
    }

    private static void assertServingStill() throws IOException {
        Message answer = DnsClient.udp(proxy.port(), DnsClient.query("still.example."));
        assertEquals(Rcode.NOERROR, answer.getRcode());
    }
}
