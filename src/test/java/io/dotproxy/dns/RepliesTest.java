package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.CookieOption;
import org.xbill.DNS.DClass;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.ExtendedErrorCodeOption;
import org.xbill.DNS.ExtendedFlags;
import org.xbill.DNS.GenericEDNSOption;
import org.xbill.DNS.Flags;
import org.xbill.DNS.NSRecord;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * The proxy's own error answers, read back by dnsjava. The flag rule the answers must follow is
 * stated here from the RFCs, bit by bit, in {@link #assertFlagRule}; it is not taken from
 * {@link Replies}.
 */
class RepliesTest {
    private static final ByteBufAllocator ALLOC = ByteBufAllocator.DEFAULT;

    /** dnsjava numbers header bits from the top (QR is 0, RFC 1035 §4.1.1); it has no name for Z. */
    private static final int Z = 9;
    /** Every header bit a query can set besides QR and the opcode. */
    private static final int[] QUERY_BITS = {Flags.AA, Flags.TC, Flags.RD, Flags.RA, Z, Flags.AD, Flags.CD};

    /** How the query speaks EDNS. */
    private enum Edns { NONE, DO_CLEAR, DO_SET }

    /** An rcode, the reason given for it and the text, cycled through the cases. */
    private record Reason(int rcode, ExtendedError ede, String text) {}

    private static final List<Reason> REASONS = List.of(
            new Reason(Rcode.SERVFAIL, ExtendedError.NO_REACHABLE_AUTHORITY, null),
            new Reason(Rcode.REFUSED, ExtendedError.PROHIBITED, ""),
            new Reason(Rcode.NOTIMP, ExtendedError.NOT_SUPPORTED, "opcode"),
            new Reason(Rcode.FORMERR, ExtendedError.OTHER, "ünïcødé ✓ 𝄞"),
            new Reason(Rcode.SERVFAIL, ExtendedError.NETWORK_ERROR, "upstream closed the connection"));

    private static org.xbill.DNS.Message read(ByteBuf buf) throws Exception {
        try {
            return new org.xbill.DNS.Message(ByteBufUtil.getBytes(buf));
        } finally {
            buf.release();
        }
    }

    private static byte[] query(String name, int type, Edns edns) throws Exception {
        org.xbill.DNS.Message query = org.xbill.DNS.Message.newQuery(
                Record.newRecord(Name.fromString(name), type, DClass.IN));
        if (edns != Edns.NONE) {
            query.addRecord(new OPTRecord(4096, 0, 0, edns == Edns.DO_SET ? ExtendedFlags.DO : 0), Section.ADDITIONAL);
        }
        return query.toWire();
    }

    /** The flags word with the opcode in bits 1-4 and the bits of {@code QUERY_BITS} picked by {@code combination}. */
    private static int flagsWord(int opcode, int combination) {
        int word = opcode << 11;
        for (int i = 0; i < QUERY_BITS.length; i++) {
            if ((combination >>> i & 1) != 0) {
                word |= 1 << (15 - QUERY_BITS[i]);
            }
        }
        return word;
    }

    private static byte[] withFlags(byte[] message, int word) {
        byte[] copy = message.clone();
        copy[2] = (byte) (word >>> 8);
        copy[3] = (byte) word;
        return copy;
    }

    private static boolean bit(int word, int dnsjavaIndex) {
        return (word & 1 << (15 - dnsjavaIndex)) != 0;
    }

    /**
     * The rule, from the RFCs: QR=1, opcode copied and Z=0 (RFC 1035 §4.1.1); AA=0, as the proxy is
     * no authority; TC=0, as nothing was cut; AD=0, as no data was validated (RFC 6840 §5.8). For
     * opcode QUERY: RD copied (RFC 1035 §4.1.1), CD copied (RFC 4035 §3.2.2) and RA=1, as the proxy
     * offers recursion. Other opcodes have Z where QUERY has RD, RA, AD and CD (RFC 2136 §2.2), and
     * define nothing past the header when unknown (RFC 8906 §3.1.4): all of them 0.
     */
    private static void assertFlagRule(int queryWord, byte[] answer, String where) throws Exception {
        org.xbill.DNS.Header header = new org.xbill.DNS.Header(answer);
        int answerWord = (answer[2] & 0xFF) << 8 | answer[3] & 0xFF;
        int opcode = queryWord >>> 11 & 0xF;
        boolean isQuery = opcode == 0;
        assertTrue(header.getFlag(Flags.QR), where + ": QR");
        assertEquals(opcode, header.getOpcode(), where + ": opcode");
        assertFalse(header.getFlag(Flags.AA), where + ": AA");
        assertFalse(header.getFlag(Flags.TC), where + ": TC");
        assertFalse(header.getFlag(Flags.AD), where + ": AD");
        assertFalse(bit(answerWord, Z), where + ": Z");
        assertEquals(isQuery && bit(queryWord, Flags.RD), header.getFlag(Flags.RD), where + ": RD");
        assertEquals(isQuery && bit(queryWord, Flags.CD), header.getFlag(Flags.CD), where + ": CD");
        assertEquals(isQuery, header.getFlag(Flags.RA), where + ": RA");
    }

    static IntStream opcodes() {
        return IntStream.range(0, 16);
    }

    @ParameterizedTest(name = "opcode {0}")
    @MethodSource("opcodes")
    void errorAnswersFollowTheFlagRuleForEveryFlagAndEdns(int opcode) throws Exception {
        int n = 0;
        for (Edns edns : Edns.values()) {
            byte[] base = query("Mixed.Example.", Type.MX, edns);
            org.xbill.DNS.Message sent = new org.xbill.DNS.Message(base);
            for (int combination = 0; combination < 1 << QUERY_BITS.length; combination++) {
                Reason reason = REASONS.get(n++ % REASONS.size());
                int word = flagsWord(opcode, combination);
                String where = String.format("opcode %d, flags %04x, %s, %s", opcode, word, edns, reason);
                ByteBuf in = Unpooled.wrappedBuffer(withFlags(base, word));

                ByteBuf out = Replies.error(ALLOC, in, Message.parse(in), reason.rcode(), reason.ede(), reason.text());

                byte[] answer = ByteBufUtil.getBytes(out);
                out.release();
                assertFlagRule(word, answer, where);
                org.xbill.DNS.Message reply = new org.xbill.DNS.Message(answer);
                assertEquals(sent.getHeader().getID(), reply.getHeader().getID(), where + ": ID");
                assertEquals(reason.rcode(), reply.getRcode(), where + ": rcode");
                // The query parsed, so its question is echoed, name case kept.
                assertEquals(sent.getQuestion(), reply.getQuestion(), where + ": question");
                assertEquals("Mixed.Example.", reply.getQuestion().getName().toString(), where + ": name case");
                assertEquals(1, reply.getHeader().getCount(Section.QUESTION), where + ": QDCOUNT");
                for (int section : new int[] {Section.ANSWER, Section.AUTHORITY}) {
                    assertEquals(0, reply.getHeader().getCount(section), where + ": no records");
                }
                assertEdns(edns, reason, reply.getOPT(), where);
            }
        }
    }

    /**
     * OPT present iff the query had one (RFC 6891 §7), with our payload size, version 0, DO
     * copied (RFC 3225 §3), and exactly one EDE option (RFC 8914 §2) with the given code and text.
     */
    private static void assertEdns(Edns edns, Reason reason, OPTRecord opt, String where) {
        if (edns == Edns.NONE) {
            assertNull(opt, where + ": no OPT, so no EDE");
            return;
        }
        assertEquals(Replies.EDNS_PAYLOAD, opt.getPayloadSize(), where + ": payload");
        assertEquals(0, opt.getVersion(), where + ": version");
        assertEquals(edns == Edns.DO_SET, (opt.getFlags() & ExtendedFlags.DO) != 0, where + ": DO");
        List<EDNSOption> options = opt.getOptions();
        assertEquals(1, options.size(), where + ": one option");
        ExtendedErrorCodeOption ede = (ExtendedErrorCodeOption) options.get(0);
        assertEquals(EDNSOption.Code.EDNS_EXTENDED_ERROR, ede.getCode(), where + ": option code");
        assertEquals(reason.ede().code(), ede.getErrorCode(), where + ": INFO-CODE");
        boolean noText = reason.text() == null || reason.text().isEmpty();
        assertEquals(noText ? null : reason.text(), ede.getText(), where + ": EXTRA-TEXT");
    }

    @ParameterizedTest(name = "opcode {0}")
    @MethodSource("opcodes")
    void formatErrorIsTheHeaderAloneWithFlagsByTheRule(int opcode) throws Exception {
        for (int combination = 0; combination < 1 << QUERY_BITS.length; combination++) {
            int word = flagsWord(opcode, combination);
            String where = String.format("opcode %d, flags %04x", opcode, word);
            // One question announced, and a name that runs past the end.
            ByteBuf broken = Unpooled.wrappedBuffer(new byte[] {
                0x43, 0x21, (byte) (word >>> 8), (byte) word, 0, 1, 0, 0, 0, 0, 0, 1, 0x07, 'e', 'x'});

            ByteBuf out = Replies.formatError(ALLOC, broken);

            byte[] answer = ByteBufUtil.getBytes(out);
            out.release();
            assertEquals(Header.LENGTH, answer.length, where + ": header only");
            assertFlagRule(word, answer, where);
            org.xbill.DNS.Message reply = new org.xbill.DNS.Message(answer);
            assertEquals(0x4321, reply.getHeader().getID(), where + ": ID");
            assertEquals(org.xbill.DNS.Rcode.FORMERR, reply.getRcode(), where + ": rcode");
            for (int section = Section.QUESTION; section <= Section.ADDITIONAL; section++) {
                assertEquals(0, reply.getHeader().getCount(section), where + ": counts zero");
            }
        }
    }

    @Test
    void servfailEchoesIdQuestionFlagsAndEdns() throws Exception {
        org.xbill.DNS.Message query = org.xbill.DNS.Message.newQuery(
                Record.newRecord(Name.fromString("Mixed.Example."), Type.MX, DClass.IN));
        query.getHeader().setFlag(Flags.CD);
        query.addRecord(new OPTRecord(4096, 0, 0, ExtendedFlags.DO), Section.ADDITIONAL);
        ByteBuf wire = Unpooled.wrappedBuffer(query.toWire());

        org.xbill.DNS.Message reply = read(Replies.error(ALLOC, wire, Message.parse(wire), Rcode.SERVFAIL,
                ExtendedError.NO_REACHABLE_AUTHORITY, "all upstreams timed out"));

        assertEquals(query.getHeader().getID(), reply.getHeader().getID());
        assertEquals(org.xbill.DNS.Rcode.SERVFAIL, reply.getRcode());
        assertTrue(reply.getHeader().getFlag(Flags.QR));
        assertTrue(reply.getHeader().getFlag(Flags.RD));
        assertTrue(reply.getHeader().getFlag(Flags.RA));
        assertTrue(reply.getHeader().getFlag(Flags.CD));
        assertFalse(reply.getHeader().getFlag(Flags.AA));
        assertEquals(query.getQuestion(), reply.getQuestion());
        assertEquals(Replies.EDNS_PAYLOAD, reply.getOPT().getPayloadSize());
        assertTrue((reply.getOPT().getFlags() & ExtendedFlags.DO) != 0);
        assertTrue(reply.getSection(Section.ANSWER).isEmpty());
        ExtendedErrorCodeOption ede = (ExtendedErrorCodeOption) reply.getOPT()
                .getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).get(0);
        assertEquals(ExtendedErrorCodeOption.NO_REACHABLE_AUTHORITY, ede.getErrorCode());
        assertEquals("all upstreams timed out", ede.getText());
    }

    @Test
    void errorToAQueryWithoutEdnsHasNoOptAndSoNoEde() throws Exception {
        ByteBuf wire = Unpooled.wrappedBuffer(query("example.", Type.A, Edns.NONE));

        ByteBuf out = Replies.error(ALLOC, wire, Message.parse(wire), Rcode.REFUSED, ExtendedError.PROHIBITED, "acl");

        assertEquals(wire.readableBytes(), out.readableBytes(), "header and question only, as the query");
        org.xbill.DNS.Message reply = read(out);
        assertEquals(org.xbill.DNS.Rcode.REFUSED, reply.getRcode());
        assertNull(reply.getOPT());
    }

    @Test
    void withoutTextTheOptionHoldsTheInfoCodeAlone() throws Exception {
        for (String text : new String[] {null, ""}) {
            ByteBuf wire = Unpooled.wrappedBuffer(query("example.", Type.A, Edns.DO_CLEAR));

            ByteBuf out = Replies.error(ALLOC, wire, Message.parse(wire), Rcode.SERVFAIL,
                    ExtendedError.NOT_READY, text);

            // The message ends in the option: OPTION-CODE 15, OPTION-LENGTH 2, INFO-CODE 14 (RFC 8914 §2, §4.15).
            int end = out.writerIndex();
            assertEquals(15, out.getUnsignedShort(end - 6));
            assertEquals(2, out.getUnsignedShort(end - 4));
            assertEquals(14, out.getUnsignedShort(end - 2));
            assertEquals(4 + 2, out.getUnsignedShort(end - 8), "OPT RDLENGTH: one option");
            out.release();
        }
    }

    @Test
    void aNullReasonWritesAnOptWithoutOptions() throws Exception {
        ByteBuf wire = Unpooled.wrappedBuffer(query("example.", Type.A, Edns.DO_SET));

        org.xbill.DNS.Message reply = read(
                Replies.error(ALLOC, wire, Message.parse(wire), Rcode.SERVFAIL, null, "ignored"));

        assertTrue(reply.getOPT().getOptions().isEmpty());
        assertTrue((reply.getOPT().getFlags() & ExtendedFlags.DO) != 0);
    }

    /** The longest name in wire form: 255 octets (RFC 1035 §2.3.4). */
    private static String longestName() {
        String label63 = "a".repeat(63);
        return String.join(".", label63, label63, label63, "b".repeat(61)) + ".";
    }

    @Test
    void longTextIsCutAtACharacterSoTheAnswerFits512Octets() throws Exception {
        assertEquals(255, Name.fromString(longestName()).length());
        // Three octets of UTF-8 each, and four (a surrogate pair in Java) each.
        for (String unit : new String[] {"€", "𝄞", "x"}) {
            int octets = unit.getBytes(StandardCharsets.UTF_8).length;
            ByteBuf wire = Unpooled.wrappedBuffer(query(longestName(), Type.TXT, Edns.DO_SET));

            ByteBuf out = Replies.error(ALLOC, wire, Message.parse(wire), Rcode.SERVFAIL, ExtendedError.OTHER,
                    unit.repeat(600));

            assertTrue(out.readableBytes() <= Message.MIN_UDP_PAYLOAD, unit + ": " + out.readableBytes() + " octets");
            String text = ((ExtendedErrorCodeOption) read(out).getOPT().getOptions().get(0)).getText();
            assertEquals(unit.repeat(Replies.MAX_EXTRA_TEXT / octets), text, unit + ": the longest whole prefix");
        }
    }

    @Test
    void aQuestionEndingInAPointerStillFits512Octets() throws Exception {
        // 254 octets of labels (the most a name may have before its end), then a pointer to
        // offset 12: the longest first question the view accepts, one octet longer than a
        // 255-octet name. dnsjava would reject the loop, so only the size is checked.
        ByteBuf query = Unpooled.buffer();
        Header.write(query, 0x1234, Header.FLAG_RD, 1, 0, 0, 1);
        for (int i = 0; i < 3; i++) {
            query.writeByte(63).writeBytes("a".repeat(63).getBytes(StandardCharsets.US_ASCII));
        }
        query.writeByte(61).writeBytes("b".repeat(61).getBytes(StandardCharsets.US_ASCII));
        query.writeShort(0xC00C).writeShort(Type.A).writeShort(DClass.IN);
        query.writeByte(0).writeShort(RrType.OPT).writeShort(4096).writeInt(0).writeShort(0);
        Message parsed = Message.parse(query);
        assertEquals(Header.LENGTH + 256 + 4, parsed.questionEnd());

        ByteBuf out = Replies.error(ALLOC, query, parsed, Rcode.SERVFAIL, ExtendedError.OTHER, "x".repeat(600));

        assertEquals(Message.MIN_UDP_PAYLOAD, out.readableBytes(), "the bound is tight");
        out.release();
    }

    @Test
    void anExtendedRcodeNeedsEdnsAndGoesInTheOpt() throws Exception {
        int badvers = 16; // RFC 6891 §9
        ByteBuf edns = Unpooled.wrappedBuffer(query("example.", Type.A, Edns.DO_CLEAR));
        org.xbill.DNS.Message reply = read(
                Replies.error(ALLOC, edns, Message.parse(edns), badvers, ExtendedError.OTHER, null));
        assertEquals(badvers, reply.getRcode());
        assertEquals(1, reply.getOPT().getExtendedRcode());
        assertEquals(0, reply.getHeader().getRcode());

        ByteBuf plain = Unpooled.wrappedBuffer(query("example.", Type.A, Edns.NONE));
        Message parsed = Message.parse(plain);
        assertThrows(IllegalArgumentException.class,
                () -> Replies.error(ALLOC, plain, parsed, badvers, ExtendedError.OTHER, null));
        assertThrows(IllegalArgumentException.class,
                () -> Replies.error(ALLOC, edns, Message.parse(edns), 4096, ExtendedError.OTHER, null));
        assertThrows(IllegalArgumentException.class,
                () -> Replies.error(ALLOC, edns, Message.parse(edns), -1, ExtendedError.OTHER, null));
    }

    /** An answer with records in every section and an OPT (DO set, two options) followed by one more record. */
    private static org.xbill.DNS.Message answerWithOptions() throws Exception {
        Name name = Name.fromString("Cached.Example.");
        org.xbill.DNS.Message answer = org.xbill.DNS.Message.newQuery(Record.newRecord(name, Type.A, DClass.IN));
        answer.getHeader().setFlag(Flags.QR);
        answer.getHeader().setFlag(Flags.RA);
        answer.getHeader().setFlag(Flags.AD);
        answer.addRecord(new ARecord(name, DClass.IN, 30, InetAddress.getByName("192.0.2.1")), Section.ANSWER);
        answer.addRecord(new ARecord(name, DClass.IN, 30, InetAddress.getByName("192.0.2.2")), Section.ANSWER);
        answer.addRecord(new NSRecord(Name.fromString("Example."), DClass.IN, 30, Name.fromString("ns.example.")),
                Section.AUTHORITY);
        answer.addRecord(new OPTRecord(1232, 0, 0, ExtendedFlags.DO, List.of(
                new CookieOption(new byte[] {1, 2, 3, 4, 5, 6, 7, 8}),
                new GenericEDNSOption(65001, new byte[] {9, 9}))), Section.ADDITIONAL);
        answer.addRecord(new ARecord(Name.fromString("ns.example."), DClass.IN, 30, InetAddress.getByName("192.0.2.53")),
                Section.ADDITIONAL);
        return answer;
    }

    @Test
    void withExtendedErrorAppendsTheOptionAndKeepsEverythingElse() throws Exception {
        org.xbill.DNS.Message original = answerWithOptions();
        byte[] bytes = original.toWire();
        // The answer starts 3 octets into its buffer, as a view over a larger read may.
        ByteBuf answer = Unpooled.buffer().writeZero(3).writeBytes(bytes);
        answer.readerIndex(3);
        Message parsed = Message.parse(answer);

        ByteBuf out = Replies.withExtendedError(ALLOC, answer, parsed, ExtendedError.STALE_ANSWER);

        assertEquals(bytes.length + 6, out.readableBytes(), "one option: code, length, INFO-CODE");
        assertEquals(1, answer.refCnt(), "the answer is not released");
        assertArrayEquals(bytes, ByteBufUtil.getBytes(answer), "nor changed");
        org.xbill.DNS.Message copy = read(out);
        assertEquals(original.getHeader().toString(), copy.getHeader().toString(), "ID, flags, rcode, counts");
        for (int section = Section.QUESTION; section <= Section.AUTHORITY; section++) {
            assertEquals(original.getSection(section), copy.getSection(section), "section " + section);
        }
        List<Record> additional = copy.getSection(Section.ADDITIONAL);
        assertEquals(Type.OPT, additional.get(0).getType(), "the OPT keeps its place");
        assertEquals(original.getSection(Section.ADDITIONAL).get(1), additional.get(1), "the record after it");
        OPTRecord opt = copy.getOPT();
        assertEquals(1232, opt.getPayloadSize());
        assertEquals(ExtendedFlags.DO, opt.getFlags());
        List<EDNSOption> options = opt.getOptions();
        assertEquals(3, options.size());
        assertEquals(original.getOPT().getOptions(), options.subList(0, 2), "the other options, in order");
        ExtendedErrorCodeOption ede = (ExtendedErrorCodeOption) options.get(2);
        assertEquals(ExtendedErrorCodeOption.STALE_ANSWER, ede.getErrorCode());
        assertNull(ede.getText());
    }

    @Test
    void withExtendedErrorWritesTheCodeItIsGiven() throws Exception {
        ByteBuf answer = Unpooled.wrappedBuffer(answerWithOptions().toWire());

        org.xbill.DNS.Message copy = read(Replies.withExtendedError(ALLOC, answer, Message.parse(answer),
                ExtendedError.STALE_NXDOMAIN_ANSWER));

        ExtendedErrorCodeOption ede = (ExtendedErrorCodeOption) copy.getOPT()
                .getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).get(0);
        assertEquals(ExtendedErrorCodeOption.STALE_NXDOMAIN_ANSWER, ede.getErrorCode());
    }

    @Test
    void withExtendedErrorCopiesAnAnswerWithoutOptAsItIs() throws Exception {
        org.xbill.DNS.Message original = answerWithOptions();
        original.removeRecord(original.getOPT(), Section.ADDITIONAL);
        byte[] bytes = original.toWire();
        ByteBuf answer = Unpooled.wrappedBuffer(bytes);

        ByteBuf out = Replies.withExtendedError(ALLOC, answer, Message.parse(answer), ExtendedError.STALE_ANSWER);

        assertArrayEquals(bytes, ByteBufUtil.getBytes(out), "a client without EDNS gets none (RFC 6891 §7)");
        out.release();
        assertEquals(1, answer.refCnt());
    }
}
