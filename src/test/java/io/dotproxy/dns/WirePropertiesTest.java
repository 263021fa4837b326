package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.xbill.DNS.DClass;
import org.xbill.DNS.ExtendedErrorCodeOption;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.TXTRecord;
import org.xbill.DNS.Type;

/**
 * Hostile input, generated: whatever the octets, the wire code either reads a message whose
 * indexes stay inside it or says {@link WireFormatException}; nothing else is ever thrown, and
 * what it writes (truncated answers, error answers, padded queries) is itself well-formed.
 */
class WirePropertiesTest {

    @Property(tries = 3000)
    void randomOctetsParseOrFailCleanly(@ForAll @Size(max = 600) byte[] octets) {
        checkParse(octets);
    }

    @Property(tries = 3000)
    void mutatedRealMessagesParseOrFailCleanly(@ForAll("realMessages") byte[] message,
                                               @ForAll @IntRange(max = 599) int position,
                                               @ForAll byte value,
                                               @ForAll @IntRange(max = 40) int cut) {
        byte[] mutated = message.clone();
        mutated[position % mutated.length] = value;
        checkParse(Arrays.copyOf(mutated, Math.max(0, mutated.length - cut)));
    }

    @Property(tries = 1000)
    void truncationAlwaysFitsAndStaysParseable(@ForAll("realMessages") byte[] answer,
                                               @ForAll @IntRange(min = 512, max = 1232) int limit) throws Exception {
        ByteBuf fitted = Truncation.fit(ByteBufAllocator.DEFAULT, Unpooled.wrappedBuffer(answer), limit);
        try {
            assertTrue(fitted.readableBytes() <= limit);
            Message parsed = Message.parse(fitted);
            assertEquals(Header.id(Unpooled.wrappedBuffer(answer), 0), Header.id(fitted, 0));
            assertTrue(parsed.questionCount() <= 1);
        } finally {
            fitted.release();
        }
    }

    @Property(tries = 1000)
    void paddingKeepsTheMessageWellFormed(@ForAll("realMessages") byte[] query) throws Exception {
        ByteBuf in = Unpooled.wrappedBuffer(query);
        Message parsed = Message.parse(in);
        ByteBuf out = Unpooled.buffer();
        Padding.writePadded(out, in, parsed, Padding.QUERY_BLOCK);
        Message padded = Message.parse(out);
        assertEquals(parsed.qtype(), padded.qtype());
        if (parsed.hasOpt() && parsed.optEnd() == parsed.length()) {
            assertEquals(0, out.readableBytes() % Padding.QUERY_BLOCK);
        }
        new org.xbill.DNS.Message(ByteBufUtil.getBytes(out)); // dnsjava agrees
    }

    @Property(tries = 1000)
    void errorAnswersParseAndFit512Octets(@ForAll("realMessages") byte[] query,
                                          @ForAll @IntRange(max = 0x7FFF) int flags,
                                          @ForAll ExtendedError ede,
                                          @ForAll String text) throws Exception {
        ByteBuf in = Unpooled.wrappedBuffer(query);
        in.setShort(2, flags); // QR clear, any opcode and other bits
        Message parsed = Message.parse(in);
        ByteBuf out = Replies.error(ByteBufAllocator.DEFAULT, in, parsed, Rcode.SERVFAIL, ede, text);
        try {
            assertTrue(out.readableBytes() <= Message.MIN_UDP_PAYLOAD);
            org.xbill.DNS.Message answer = new org.xbill.DNS.Message(ByteBufUtil.getBytes(out));
            assertEquals(org.xbill.DNS.Rcode.SERVFAIL, answer.getRcode());
            if (parsed.hasOpt()) {
                ExtendedErrorCodeOption option = (ExtendedErrorCodeOption) answer.getOPT().getOptions().get(0);
                assertEquals(ede.code(), option.getErrorCode());
                String got = option.getText() == null ? "" : option.getText();
                assertTrue(got.getBytes(StandardCharsets.UTF_8).length <= Replies.MAX_EXTRA_TEXT);
            }
        } finally {
            out.release();
        }
    }

    private static void checkParse(byte[] octets) {
        ByteBuf buf = Unpooled.wrappedBuffer(octets);
        try {
            Message parsed = Message.parse(buf);
            assertTrue(parsed.questionEnd() <= octets.length);
            assertTrue(parsed.optEnd() <= octets.length);
            assertTrue(parsed.udpPayloadLimit() >= Message.MIN_UDP_PAYLOAD);
            Message.sameQuestion(buf, 0, octets.length, buf, 0, octets.length);
        } catch (WireFormatException expected) {
            // the one allowed way to refuse
        }
    }

    /** Queries and answers made by dnsjava: names, EDNS or not, several TXT records. */
    @Provide
    Arbitrary<byte[]> realMessages() {
        Arbitrary<String> labels = Arbitraries.strings().withCharRange('a', 'z').ofMinLength(1).ofMaxLength(20);
        return labels.list().ofMinSize(1).ofMaxSize(4).flatMap(parts -> Arbitraries.integers().between(0, 8)
                .flatMap(records -> Arbitraries.of(true, false).map(edns -> message(parts, records, edns))));
    }

    private static byte[] message(List<String> labels, int txtRecords, boolean edns) {
        try {
            Name name = Name.fromString(String.join(".", labels) + ".");
            org.xbill.DNS.Message m = org.xbill.DNS.Message.newQuery(Record.newRecord(name, Type.TXT, DClass.IN));
            for (int i = 0; i < txtRecords; i++) {
                m.addRecord(new TXTRecord(name, DClass.IN, 60, "t".repeat(30 * (i + 1))), Section.ANSWER);
            }
            if (edns) {
                m.addRecord(new OPTRecord(1232, 0, 0), Section.ADDITIONAL);
            }
            return m.toWire();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }
}
