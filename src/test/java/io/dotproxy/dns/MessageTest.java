package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.net.InetAddress;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.CNAMERecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.ExtendedFlags;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/** The wire view, checked against dnsjava as an independent encoder, and on golden broken packets. */
class MessageTest {

    static org.xbill.DNS.Message query(String name, int type) throws Exception {
        return org.xbill.DNS.Message.newQuery(Record.newRecord(Name.fromString(name), type, DClass.IN));
    }

    static ByteBuf wire(org.xbill.DNS.Message message) {
        return Unpooled.wrappedBuffer(message.toWire());
    }

    static ByteBuf hex(String text) {
        return Unpooled.wrappedBuffer(HexFormat.of().parseHex(text.replaceAll("\\s+", "")));
    }

    @Test
    void readsHeaderQuestionAndOpt() throws Exception {
        org.xbill.DNS.Message q = query("www.example.com.", Type.AAAA);
        q.addRecord(new OPTRecord(4096, 0, 0, ExtendedFlags.DO), Section.ADDITIONAL);
        ByteBuf buf = wire(q);

        Message m = Message.parse(buf);

        assertEquals(q.getHeader().getID(), Header.id(buf, 0));
        assertFalse(m.isResponse());
        assertEquals(Header.OPCODE_QUERY, m.opcode());
        assertEquals(1, m.questionCount());
        assertEquals(Type.AAAA, m.qtype());
        assertEquals(DClass.IN, m.qclass());
        assertEquals(12 + Name.fromString("www.example.com.").length() + 4, m.questionEnd());
        assertTrue(m.hasOpt());
        assertEquals(4096, m.udpPayloadLimit());
        assertTrue(m.dnssecOk());
        assertEquals(0, m.ednsVersion());
        assertEquals(buf.readableBytes(), m.length());
    }

    @ParameterizedTest
    @CsvSource({"0, 512", "100, 512", "512, 512", "1232, 1232", "65535, 65535"})
    void udpLimitIsTheAdvertisedSizeButNeverBelow512(int advertised, int limit) throws Exception {
        org.xbill.DNS.Message q = query("example.", Type.A);
        if (advertised > 0) {
            q.addRecord(new OPTRecord(advertised, 0, 0), Section.ADDITIONAL);
        }
        assertEquals(limit, Message.parse(wire(q)).udpPayloadLimit());
    }

    @Test
    void walksACompressedResponseAndFindsItsExtendedRcode() throws Exception {
        org.xbill.DNS.Message response = query("a.example.", Type.A);
        response.getHeader().setFlag(org.xbill.DNS.Flags.QR);
        Name owner = Name.fromString("a.example.");
        response.addRecord(new CNAMERecord(owner, DClass.IN, 60, Name.fromString("b.example.")), Section.ANSWER);
        response.addRecord(new ARecord(Name.fromString("b.example."), DClass.IN, 60,
                InetAddress.getByName("192.0.2.1")), Section.ANSWER);
        response.addRecord(new OPTRecord(1232, 1, 0), Section.ADDITIONAL); // ext-rcode 1 => 16 | rcode
        response.getHeader().setRcode(0);

        Message m = Message.parse(wire(response));

        assertTrue(m.isResponse());
        assertEquals(16, m.rcode(), "BADVERS: extended rcode 1, header rcode 0");
        assertTrue(m.hasOpt());
    }

    @Test
    void viewWorksAtAnOffsetSuchAsAfterATcpLengthPrefix() throws Exception {
        org.xbill.DNS.Message response = query("a.example.", Type.A);
        response.addRecord(new ARecord(Name.fromString("a.example."), DClass.IN, 60,
                InetAddress.getByName("192.0.2.1")), Section.ANSWER); // owner compressed to the question
        byte[] bytes = response.toWire();
        ByteBuf framed = Unpooled.buffer().writeShort(bytes.length).writeBytes(bytes);
        framed.readerIndex(2);

        Message m = Message.parse(framed);

        assertEquals(2, m.start());
        assertEquals(Type.A, m.qtype());
    }

    @Test
    void aViewMovedToACopyReadsAsTheCopyParsed() throws Exception {
        org.xbill.DNS.Message query = query("moved.example.", Type.AAAA);
        query.addRecord(new OPTRecord(1400, 0, 0, ExtendedFlags.DO), Section.ADDITIONAL);
        byte[] bytes = query.toWire();
        ByteBuf framed = Unpooled.buffer().writeShort(bytes.length).writeBytes(bytes);
        framed.readerIndex(2);
        ByteBuf copy = Unpooled.buffer().writeZero(5).writeBytes(bytes);
        copy.readerIndex(5);

        Message moved = Message.parse(framed).movedTo(5);
        Message parsed = Message.parse(copy);

        assertEquals(parsed.start(), moved.start());
        assertEquals(parsed.length(), moved.length());
        assertEquals(parsed.flags(), moved.flags());
        assertEquals(parsed.questionCount(), moved.questionCount());
        assertEquals(parsed.questionStart(), moved.questionStart());
        assertEquals(parsed.questionEnd(), moved.questionEnd());
        assertEquals(parsed.qtype(), moved.qtype());
        assertEquals(parsed.qclass(), moved.qclass());
        assertEquals(parsed.optStart(), moved.optStart());
        assertEquals(parsed.optEnd(), moved.optEnd());
        assertEquals(parsed.udpPayloadLimit(), moved.udpPayloadLimit());
        assertEquals(parsed.dnssecOk(), moved.dnssecOk());
        assertEquals(parsed.rcode(), moved.rcode());
        assertEquals(-1, Message.parse(wire(query("plain.example.", Type.A))).movedTo(7).optStart(), "no OPT stays none");
    }

    @Test
    void sameQuestionIgnoresCaseButNotTypeOrClass() throws Exception {
        ByteBuf lower = wire(query("www.example.com.", Type.A));
        ByteBuf mixed = wire(query("WWW.Example.COM.", Type.A));
        ByteBuf otherType = wire(query("www.example.com.", Type.AAAA));
        ByteBuf otherName = wire(query("www.example.org.", Type.A));

        assertTrue(Message.sameQuestion(lower, 0, lower.writerIndex(), mixed, 0, mixed.writerIndex()));
        assertFalse(Message.sameQuestion(lower, 0, lower.writerIndex(), otherType, 0, otherType.writerIndex()));
        assertFalse(Message.sameQuestion(lower, 0, lower.writerIndex(), otherName, 0, otherName.writerIndex()));
        ByteBuf broken = hex("1234 8100 0001 0000 0000 0000 03 777777");
        assertFalse(Message.sameQuestion(lower, 0, lower.writerIndex(), broken, 0, broken.writerIndex()));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "shorter than a header          | 1234 0100 0001 0000 00",
        "question name runs off the end | 1234 0100 0001 0000 0000 0000 07 6578616d70",
        "question type cut short        | 1234 0100 0001 0000 0000 0000 00 0001",
        "pointer to itself              | 1234 0100 0001 0000 0000 0000 c00c 0001 0001",
        "forward pointer                | 1234 0100 0001 0000 0000 0000 c012 0001 0001 00",
        "pointer into the header        | 1234 8100 0001 0001 0000 0000 00 0001 0001 c002 0001 0001 00000000 0000",
        "pointer loop between records   | 1234 8100 0001 0002 0000 0000 00 0001 0001 01 61 c01f 0001 0001 00000000 0000 01 62 c011 0001 0001 00000000 0000",
        "label type 01                  | 1234 0100 0001 0000 0000 0000 41 00 0001 0001",
        "label type 10                  | 1234 0100 0001 0000 0000 0000 81 00 0001 0001",
        "record data past the end       | 1234 8100 0001 0001 0000 0000 00 0001 0001 00 0001 0001 00000000 0004 c000",
        "answer count larger than data  | 1234 8100 0001 0002 0000 0000 00 0001 0001 00 0001 0001 00000000 0000",
        "trailing octets                | 1234 0100 0001 0000 0000 0000 00 0001 0001 ff",
        "two OPT records                | 1234 0100 0001 0000 0000 0002 00 0001 0001 00 0029 1000 00000000 0000 00 0029 1000 00000000 0000",
        "OPT owner not the root         | 1234 0100 0001 0000 0000 0001 00 0001 0001 01 61 00 0029 1000 00000000 0000",
    })
    void rejectsBrokenMessages(String why, String packet) {
        assertThrows(WireFormatException.class, () -> Message.parse(hex(packet)), why);
    }

    @Test
    void rejectsNamesLongerThan255Octets() {
        StringBuilder name = new StringBuilder();
        for (int i = 0; i < 5; i++) {
            name.append("3f").append("61".repeat(63)); // five 63-octet labels: 320 octets
        }
        ByteBuf packet = hex("1234 0100 0001 0000 0000 0000" + name + "00 0001 0001");
        assertThrows(WireFormatException.class, () -> Message.parse(packet));
    }

    @Test
    void acceptsTheLongestLegalName() throws Exception {
        String label63 = "a".repeat(63);
        String label61 = "a".repeat(61);
        Name longest = Name.fromString(label63 + "." + label63 + "." + label63 + "." + label61 + ".");
        assertEquals(255, longest.length());
        assertEquals(Type.A, Message.parse(wire(query(longest.toString(), Type.A))).qtype());
    }
}
