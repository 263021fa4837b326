package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.DClass;
import org.xbill.DNS.ExtendedErrorCodeOption;
import org.xbill.DNS.ExtendedFlags;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.TXTRecord;
import org.xbill.DNS.Type;

class TruncationTest {
    private static org.xbill.DNS.Message bigAnswer(boolean edns) throws Exception {
        Name name = Name.fromString("big.example.");
        org.xbill.DNS.Message m = org.xbill.DNS.Message.newQuery(Record.newRecord(name, Type.TXT, DClass.IN));
        m.getHeader().setFlag(Flags.QR);
        m.getHeader().setFlag(Flags.RA);
        for (int i = 0; i < 8; i++) {
            m.addRecord(new TXTRecord(name, DClass.IN, 60, "x".repeat(200)), Section.ANSWER);
        }
        if (edns) {
            m.addRecord(new OPTRecord(4096, 0, 0, ExtendedFlags.DO), Section.ADDITIONAL);
        }
        return m;
    }

    @Test
    void answerThatFitsIsPassedThroughUntouched() throws Exception {
        ByteBuf answer = Unpooled.wrappedBuffer(bigAnswer(false).toWire());
        assertSame(answer, Truncation.fit(ByteBufAllocator.DEFAULT, answer, 65535));
        assertEquals(1, answer.refCnt());
    }

    @Test
    void tooLongAnswerKeepsHeaderQuestionAndOptWithTcSet() throws Exception {
        org.xbill.DNS.Message original = bigAnswer(true);
        ByteBuf answer = Unpooled.wrappedBuffer(original.toWire());

        ByteBuf cut = Truncation.fit(ByteBufAllocator.DEFAULT, answer, 512);

        assertEquals(0, answer.refCnt(), "the long answer is released");
        assertTrue(cut.readableBytes() <= 512);
        org.xbill.DNS.Message parsed = new org.xbill.DNS.Message(ByteBufUtil.getBytes(cut));
        assertTrue(parsed.getHeader().getFlag(Flags.TC));
        assertTrue(parsed.getHeader().getFlag(Flags.QR));
        assertTrue(parsed.getHeader().getFlag(Flags.RA));
        assertEquals(original.getHeader().getID(), parsed.getHeader().getID());
        assertEquals(original.getQuestion(), parsed.getQuestion());
        assertTrue(parsed.getSection(Section.ANSWER).isEmpty());
        assertEquals(Replies.EDNS_PAYLOAD, parsed.getOPT().getPayloadSize());
        assertTrue((parsed.getOPT().getFlags() & ExtendedFlags.DO) != 0, "DO bit kept");
        cut.release();
    }

    @Test
    void cutAnswerKeepsEveryFlagTheExtendedRcodeVersionAndDoButNoOption() throws Exception {
        int badCookie = 23; // RFC 7873 §8: an extended rcode, so its upper bits live in the OPT record
        org.xbill.DNS.Message original = bigAnswer(false);
        for (int flag : new int[] {Flags.AA, Flags.AD, Flags.CD}) {
            original.getHeader().setFlag(flag);
        }
        original.getHeader().setRcode(badCookie & 0xF);
        original.addRecord(new OPTRecord(4096, badCookie >>> 4, 1, ExtendedFlags.DO,
                        new ExtendedErrorCodeOption(ExtendedErrorCodeOption.STALE_ANSWER, "x".repeat(300))),
                Section.ADDITIONAL);
        ByteBuf answer = Unpooled.wrappedBuffer(original.toWire());

        ByteBuf out = Truncation.fit(ByteBufAllocator.DEFAULT, answer, 512);

        org.xbill.DNS.Message cut = new org.xbill.DNS.Message(ByteBufUtil.getBytes(out));
        out.release();

        for (int flag : new int[] {Flags.QR, Flags.AA, Flags.TC, Flags.RD, Flags.RA, Flags.AD, Flags.CD}) {
            assertTrue(cut.getHeader().getFlag(flag), Flags.string(flag));
        }
        assertEquals(badCookie, cut.getRcode());
        assertEquals(1, cut.getOPT().getVersion());
        assertTrue((cut.getOPT().getFlags() & ExtendedFlags.DO) != 0);
        assertEquals(Replies.EDNS_PAYLOAD, cut.getOPT().getPayloadSize());
        assertTrue(cut.getOPT().getOptions().isEmpty(), "options dropped, EDE included (RFC 8914 §3)");
        assertEquals(original.getQuestion(), cut.getQuestion());
    }

    @Test
    void cutAnswerWithoutEdnsHasNoOpt() throws Exception {
        org.xbill.DNS.Message original = bigAnswer(false);
        ByteBuf answer = Unpooled.wrappedBuffer(original.toWire());

        ByteBuf out = Truncation.fit(ByteBufAllocator.DEFAULT, answer, 512);

        org.xbill.DNS.Message cut = new org.xbill.DNS.Message(ByteBufUtil.getBytes(out));
        out.release();
        assertTrue(cut.getHeader().getFlag(Flags.TC));
        assertNull(cut.getOPT());
        assertEquals(0, cut.getHeader().getCount(Section.ADDITIONAL));
        assertEquals(original.getQuestion(), cut.getQuestion());
    }

    @Test
    void tooLongAnswerThatDoesNotParseIsRefusedAndReleased() {
        ByteBuf garbage = Unpooled.wrappedBuffer(new byte[600]);
        garbage.setShort(4, 1); // one question that is all zeros and then trailing junk
        assertThrows(WireFormatException.class, () -> Truncation.fit(ByteBufAllocator.DEFAULT, garbage, 512));
        assertEquals(0, garbage.refCnt());
    }
}
