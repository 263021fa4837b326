package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.net.InetAddress;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.ExtendedFlags;
import org.xbill.DNS.Flags;
import org.xbill.DNS.NSRecord;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.SOARecord;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * The TTL walk a cache relies on, checked against dnsjava: every offset it finds is a record's TTL
 * field (writing there changes exactly that record's TTL as dnsjava reads it), the OPT record's
 * flags are never among them, and the smallest and negative TTLs follow RFC 1035, 2181 and 2308.
 */
class TtlsTest {
    private static final Name ZONE = name("example.org.");

    private static Name name(String text) {
        try {
            return Name.fromString(text);
        } catch (Exception e) {
            throw new IllegalArgumentException(text, e);
        }
    }

    private static ARecord a(String owner, long ttl, String address) throws Exception {
        return new ARecord(name(owner), DClass.IN, ttl, InetAddress.getByName(address));
    }

    private static SOARecord soa(long ttl, long minimum) {
        return new SOARecord(ZONE, DClass.IN, ttl, name("ns1.example.org."), name("hostmaster.example.org."),
                2024120401, 7200, 3600, 1209600, minimum);
    }

    private static org.xbill.DNS.Message response(int rcode) {
        org.xbill.DNS.Message message = org.xbill.DNS.Message.newQuery(Record.newRecord(ZONE, Type.A, DClass.IN));
        message.getHeader().setFlag(Flags.QR);
        message.getHeader().setRcode(rcode);
        return message;
    }

    private static Ttls.Scan scan(ByteBuf wire) throws WireFormatException {
        return Ttls.scan(wire, Message.parse(wire));
    }

    /** Answer, authority and additional records, each with its own TTL, and an OPT among the additional ones. */
    private static org.xbill.DNS.Message everySection() throws Exception {
        org.xbill.DNS.Message message = response(org.xbill.DNS.Rcode.NOERROR);
        message.addRecord(a("example.org.", 1001, "192.0.2.1"), Section.ANSWER);
        message.addRecord(a("example.org.", 1002, "192.0.2.2"), Section.ANSWER);
        message.addRecord(new NSRecord(ZONE, DClass.IN, 1003, name("ns1.example.org.")), Section.AUTHORITY);
        message.addRecord(a("ns1.example.org.", 1004, "192.0.2.53"), Section.ADDITIONAL);
        // EDNS flags DO, extended rcode 0, version 0: the TTL field reads 0x00008000 (RFC 6891 §6.1.3).
        message.addRecord(new OPTRecord(1232, 0, 0, ExtendedFlags.DO), Section.ADDITIONAL);
        message.addRecord(a("ns2.example.org.", 1005, "192.0.2.54"), Section.ADDITIONAL);
        return message;
    }

    @Test
    void offsetsAreTheTtlFieldsOfEveryRecordButTheOpt() throws Exception {
        byte[] bytes = everySection().toWire();
        // The message starts 7 octets into the buffer: offsets count from its first octet.
        ByteBuf wire = Unpooled.buffer().writeZero(7).writeBytes(bytes);
        wire.readerIndex(7);

        Ttls.Scan scan = scan(wire);

        int[] offsets = scan.offsets();
        assertEquals(5, offsets.length, "five records besides the OPT");
        for (int i = 0; i < offsets.length; i++) {
            assertEquals(1001 + i, wire.getInt(7 + offsets[i]), "record " + i + ", in message order");
        }
        assertEquals(1001, scan.smallest());

        // dnsjava as the oracle: a new value at each offset is that record's TTL, and the OPT is untouched.
        for (int i = 0; i < offsets.length; i++) {
            bytes[offsets[i]] = 0;
            bytes[offsets[i] + 1] = 0;
            bytes[offsets[i] + 2] = (byte) 0x70;
            bytes[offsets[i] + 3] = (byte) i;
        }
        org.xbill.DNS.Message patched = new org.xbill.DNS.Message(bytes);
        List<Record> records = new java.util.ArrayList<>();
        records.addAll(patched.getSection(Section.ANSWER));
        records.addAll(patched.getSection(Section.AUTHORITY));
        for (Record record : patched.getSection(Section.ADDITIONAL)) {
            if (record.getType() != Type.OPT) {
                records.add(record);
            }
        }
        for (int i = 0; i < records.size(); i++) {
            assertEquals(0x7000 + i, records.get(i).getTTL(), records.get(i).toString());
        }
        assertEquals(ExtendedFlags.DO, patched.getOPT().getFlags(), "the OPT's flags are not a TTL");
        assertEquals(0, patched.getOPT().getExtendedRcode());
        assertEquals(1232, patched.getOPT().getPayloadSize());
    }

    @Test
    void theOptIsNotATtlEvenWhenItsFieldIsTheSmallest() throws Exception {
        org.xbill.DNS.Message message = response(org.xbill.DNS.Rcode.NOERROR);
        message.addRecord(a("example.org.", 100, "192.0.2.1"), Section.ANSWER);
        message.addRecord(new OPTRecord(1232, 0, 0, 0), Section.ADDITIONAL); // TTL field 0

        Ttls.Scan scan = scan(Unpooled.wrappedBuffer(message.toWire()));

        assertEquals(1, scan.offsets().length);
        assertEquals(100, scan.smallest());
        assertEquals(-1, scan.negative(), "no SOA");
    }

    @Test
    void aTtlWithTheTopBitSetCountsAsZero() throws Exception {
        org.xbill.DNS.Message message = response(org.xbill.DNS.Rcode.NOERROR);
        message.addRecord(a("example.org.", 300, "192.0.2.1"), Section.ANSWER);
        message.addRecord(a("example.org.", 600, "192.0.2.2"), Section.ANSWER);
        byte[] bytes = message.toWire();
        ByteBuf wire = Unpooled.wrappedBuffer(bytes);
        int second = scan(wire).offsets()[1];
        wire.setInt(second, 0x80000001); // RFC 2181 §8: as if zero

        assertEquals(0, scan(wire).smallest());
    }

    @Test
    void noRecordsNoSmallestTtl() throws Exception {
        Ttls.Scan scan = scan(Unpooled.wrappedBuffer(response(org.xbill.DNS.Rcode.NXDOMAIN).toWire()));

        assertEquals(0, scan.offsets().length);
        assertEquals(-1, scan.smallest());
        assertEquals(-1, scan.negative());
    }

    @Test
    void negativeTtlIsTheSmallerOfTheSoaTtlAndItsMinimum() throws Exception {
        long[][] cases = {{3600, 300, 300}, {120, 300, 120}, {300, 300, 300}, {0, 300, 0}};
        for (long[] c : cases) {
            org.xbill.DNS.Message message = response(org.xbill.DNS.Rcode.NXDOMAIN);
            message.addRecord(soa(c[0], c[1]), Section.AUTHORITY);

            Ttls.Scan scan = scan(Unpooled.wrappedBuffer(message.toWire()));

            assertEquals(c[2], scan.negative(), "SOA TTL " + c[0] + ", MINIMUM " + c[1]);
            assertEquals(c[0], scan.smallest());
        }
    }

    @Test
    void negativeTtlTakesTheFirstSoaOfTheAuthoritySectionOnly() throws Exception {
        org.xbill.DNS.Message inAnswer = response(org.xbill.DNS.Rcode.NOERROR);
        inAnswer.addRecord(soa(60, 30), Section.ANSWER); // a query for the SOA itself: a positive answer
        inAnswer.addRecord(soa(60, 30), Section.ADDITIONAL);
        assertEquals(-1, scan(Unpooled.wrappedBuffer(inAnswer.toWire())).negative(), "no SOA in authority");

        org.xbill.DNS.Message two = response(org.xbill.DNS.Rcode.NOERROR);
        two.addRecord(soa(3600, 300), Section.AUTHORITY);
        two.addRecord(new SOARecord(name("org."), DClass.IN, 10, name("a0.org."), name("h.org."), 1, 2, 3, 4, 10),
                Section.AUTHORITY);
        Ttls.Scan scan = scan(Unpooled.wrappedBuffer(two.toWire()));
        assertEquals(300, scan.negative(), "the first SOA");
        assertEquals(10, scan.smallest());
    }

    @Test
    void anSoaMinimumWithTheTopBitSetCountsAsZero() throws Exception {
        org.xbill.DNS.Message message = response(org.xbill.DNS.Rcode.NXDOMAIN);
        message.addRecord(soa(3600, 300), Section.AUTHORITY);
        byte[] bytes = message.toWire();
        bytes[bytes.length - 4] = (byte) 0x80; // MINIMUM is the SOA's last field, the message's last octets

        assertEquals(0, scan(Unpooled.wrappedBuffer(bytes)).negative());
    }

    /**
     * A golden answer whose owner names are compression pointers, one of them behind a label
     * ({@code www} then a pointer to the question), offsets worked out by hand.
     */
    private static final String COMPRESSED = """
            1234 8180 0001 0002 0000 0001
            07 6578616d706c65 03 6f7267 00 0001 0001
            c00c 0001 0001 0000012c 0004 c0000201
            03 777777 c00c 0001 0001 0000003c 0004 c0000202
            00 0029 1000 00008000 0000
            """;

    @Test
    void ownerNamesWithCompressionPointersAreSkipped() throws Exception {
        byte[] bytes = HexFormat.of().parseHex(COMPRESSED.replaceAll("\\s", ""));
        org.xbill.DNS.Message oracle = new org.xbill.DNS.Message(bytes);
        assertEquals("www.example.org.", oracle.getSection(Section.ANSWER).get(1).getName().toString());
        assertEquals(60, oracle.getSection(Section.ANSWER).get(1).getTTL());

        Ttls.Scan scan = scan(Unpooled.wrappedBuffer(bytes));

        // Header 12 + question 17 = 29; first record: pointer 2, type 2, class 2, then its TTL at 35;
        // it ends at 45; second: 4 octets of label, pointer 2, type 2, class 2, then its TTL at 55.
        assertArrayEquals(new int[] {35, 55}, scan.offsets());
        assertEquals(60, scan.smallest());
    }
}
