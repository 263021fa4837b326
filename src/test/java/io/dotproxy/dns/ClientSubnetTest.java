package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.net.InetAddress;
import java.util.List;
import org.xbill.DNS.ClientSubnetOption;
import org.xbill.DNS.CookieOption;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.ExtendedFlags;
import org.xbill.DNS.GenericEDNSOption;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;
import org.junit.jupiter.api.Test;

/** ECS found and removed, with dnsjava building the messages and reading the copies back. */
class ClientSubnetTest {
    private static final EDNSOption COOKIE = new CookieOption(new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
    private static final EDNSOption PADDING = new GenericEDNSOption(EDNSOption.Code.PADDING, new byte[16]);

    private static EDNSOption subnet(String address, int prefix) throws Exception {
        return new ClientSubnetOption(prefix, InetAddress.getByName(address));
    }

    private static org.xbill.DNS.Message query(List<EDNSOption> options) throws Exception {
        org.xbill.DNS.Message query = MessageTest.query("pod.example.", Type.AAAA);
        query.getHeader().setID(0x1234); // the same ID, so that two encodings compare
        query.addRecord(new OPTRecord(1232, 0, 0, ExtendedFlags.DO, options), Section.ADDITIONAL);
        return query;
    }

    private static byte[] stripped(byte[] wire) throws Exception {
        ByteBuf in = Unpooled.wrappedBuffer(wire);
        Message parsed = Message.parse(in);
        assertTrue(ClientSubnet.present(in, parsed));
        ByteBuf out = Unpooled.buffer(parsed.length());
        int written = ClientSubnet.writeWithout(out, in, parsed);
        assertEquals(out.readableBytes(), written);
        Message.parse(out); // still one well-formed message
        return ByteBufUtil.getBytes(out);
    }

    @Test
    void onlyTheSubnetGoesAndEverythingElseStaysByteForByte() throws Exception {
        byte[] with = query(List.of(COOKIE, subnet("10.244.3.0", 24), PADDING)).toWire();
        byte[] without = query(List.of(COOKIE, PADDING)).toWire();

        byte[] copy = stripped(with);

        assertArrayEquals(without, copy, "dnsjava's own encoding of the query without ECS");
        OPTRecord opt = new org.xbill.DNS.Message(copy).getOPT();
        assertEquals(List.of(COOKIE, PADDING), opt.getOptions());
        assertEquals(1232, opt.getPayloadSize());
        assertEquals(ExtendedFlags.DO, opt.getFlags());
    }

    @Test
    void everySubnetOptionGoesAndTheRdlengthFollows() throws Exception {
        org.xbill.DNS.Message with = query(List.of(subnet("10.0.0.1", 32), COOKIE, subnet("fd00::", 56)));

        byte[] copy = stripped(with.toWire());

        assertArrayEquals(query(List.of(COOKIE)).toWire(), copy);
        assertTrue(new org.xbill.DNS.Message(copy).getOPT().getOptions(EDNSOption.Code.CLIENT_SUBNET).isEmpty());
        assertArrayEquals(query(List.of()).toWire(), stripped(query(List.of(subnet("192.0.2.0", 24))).toWire()),
                "an OPT record with ECS alone keeps no options (RDLENGTH 0)");
    }

    @Test
    void aMessageWithoutSubnetIsNotForStripping() throws Exception {
        for (org.xbill.DNS.Message message : List.of(MessageTest.query("plain.example.", Type.A), query(List.of()),
                query(List.of(COOKIE, PADDING)))) {
            ByteBuf wire = Unpooled.wrappedBuffer(message.toWire());
            assertFalse(ClientSubnet.present(wire, Message.parse(wire)), message.toString());
        }
    }

    @Test
    void aMalformedOptionListIsLeftAlone() throws Exception {
        byte[] wire = query(List.of(subnet("10.0.0.1", 32))).toWire();
        int lengthField = wire.length - 8 - 2; // the last option: ECS for a /32 has 8 octets of data
        wire[lengthField + 1] = 9; // one octet past the OPT data
        ByteBuf buf = Unpooled.wrappedBuffer(wire);
        assertFalse(ClientSubnet.present(buf, Message.parse(buf)));
    }

    @Test
    void recordsAfterTheOptRecordKeepTheirPlace() throws Exception {
        byte[] with = query(List.of(subnet("10.0.0.0", 24))).toWire();
        byte[] without = query(List.of()).toWire();
        byte[] trailer = {0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, (byte) 192, 0, 2, 1}; // root A 192.0.2.1, after OPT
        ByteBuf in = Unpooled.buffer().writeBytes(with).writeBytes(trailer);
        in.setShort(10, 2); // ARCOUNT
        Message parsed = Message.parse(in);
        ByteBuf out = Unpooled.buffer();

        ClientSubnet.writeWithout(out, in, parsed);

        ByteBuf expected = Unpooled.buffer().writeBytes(without).writeBytes(trailer);
        expected.setShort(10, 2);
        assertEquals(ByteBufUtil.hexDump(expected), ByteBufUtil.hexDump(out));
    }
}
