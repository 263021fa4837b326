package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.DClass;
import org.xbill.DNS.ExtendedFlags;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

class RepliesTest {
    private static org.xbill.DNS.Message read(ByteBuf buf) throws Exception {
        try {
            return new org.xbill.DNS.Message(ByteBufUtil.getBytes(buf));
        } finally {
            buf.release();
        }
    }

    @Test
    void servfailEchoesIdQuestionFlagsAndEdns() throws Exception {
        org.xbill.DNS.Message query = org.xbill.DNS.Message.newQuery(
                Record.newRecord(Name.fromString("Mixed.Example."), Type.MX, DClass.IN));
        query.getHeader().setFlag(Flags.CD);
        query.addRecord(new OPTRecord(4096, 0, 0, ExtendedFlags.DO), Section.ADDITIONAL);
        ByteBuf wire = Unpooled.wrappedBuffer(query.toWire());

        org.xbill.DNS.Message reply = read(Replies.error(ByteBufAllocator.DEFAULT, wire, Message.parse(wire), Rcode.SERVFAIL));

        assertEquals(query.getHeader().getID(), reply.getHeader().getID());
        assertEquals(org.xbill.DNS.Rcode.SERVFAIL, reply.getRcode());
        assertTrue(reply.getHeader().getFlag(Flags.QR));
        assertTrue(reply.getHeader().getFlag(Flags.RD));
        assertTrue(reply.getHeader().getFlag(Flags.RA));
        assertTrue(reply.getHeader().getFlag(Flags.CD));
        assertFalse(reply.getHeader().getFlag(Flags.AA));
        assertEquals(query.getQuestion(), reply.getQuestion());
        assertEquals("Mixed.Example.", reply.getQuestion().getName().toString(), "name case kept");
        assertEquals(Replies.EDNS_PAYLOAD, reply.getOPT().getPayloadSize());
        assertTrue((reply.getOPT().getFlags() & ExtendedFlags.DO) != 0);
        assertTrue(reply.getSection(Section.ANSWER).isEmpty());
    }

    @Test
    void errorToAQueryWithoutEdnsHasNoOpt() throws Exception {
        org.xbill.DNS.Message query = org.xbill.DNS.Message.newQuery(
                Record.newRecord(Name.fromString("example."), Type.A, DClass.IN));
        ByteBuf wire = Unpooled.wrappedBuffer(query.toWire());

        org.xbill.DNS.Message reply = read(Replies.error(ByteBufAllocator.DEFAULT, wire, Message.parse(wire), Rcode.REFUSED));

        assertEquals(org.xbill.DNS.Rcode.REFUSED, reply.getRcode());
        assertNull(reply.getOPT());
    }

    @Test
    void formatErrorIsTheHeaderAlone() throws Exception {
        ByteBuf broken = Unpooled.wrappedBuffer(new byte[] {
            0x43, 0x21, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 'e', 'x'});

        ByteBuf reply = Replies.formatError(ByteBufAllocator.DEFAULT, broken);

        assertEquals(Header.LENGTH, reply.readableBytes());
        org.xbill.DNS.Message parsed = read(reply);
        assertEquals(0x4321, parsed.getHeader().getID());
        assertEquals(org.xbill.DNS.Rcode.FORMERR, parsed.getRcode());
        assertTrue(parsed.getHeader().getFlag(Flags.RD));
        assertNull(parsed.getQuestion());
    }
}
