package io.dotproxy.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * The cache key and the question check read names eight octets at a time: every name length (so
 * every tail of one to seven octets), every octet value, the message anywhere in its buffer. The
 * oracle lowers octet by octet.
 */
class QuestionTest {
    @Property
    void eightOctetsAreLoweredAsEachOnItsOwn(@ForAll long octets) {
        long expected = 0;
        for (int shift = 56; shift >= 0; shift -= 8) {
            int b = (int) (octets >>> shift) & 0xFF;
            expected = expected << 8 | (b >= 'A' && b <= 'Z' ? b + 32 : b);
        }
        assertEquals(expected, Question.lower(octets));
    }

    @Property
    void anySpellingOfANameHasItsKeyAndMatchesIt(@ForAll("labels") List<byte[]> labels, @ForAll("offsets") int offset,
                                                 @ForAll long caseBits) {
        ByteBuf asStored = message(labels, 0, 0);
        ByteBuf asked = message(respell(labels, caseBits), offset + 1, 0);
        Message storedView = CacheHarness.parse(asStored);
        Message askedView = CacheHarness.parse(asked);

        assertEquals(Question.key(asStored, storedView), Question.key(asked, askedView));
        assertTrue(Question.matches(Question.lowerCase(asStored, storedView), asked, askedView));
    }

    @Property
    void aNameThatDiffersInAnyOctetOtherThanCaseDoesNotMatch(@ForAll("labels") List<byte[]> labels,
                                                             @ForAll("offsets") int offset, @ForAll int which,
                                                             @ForAll byte other) {
        List<byte[]> changed = labels.stream().map(byte[]::clone).toList();
        byte[] label = changed.get(Math.floorMod(which, changed.size()));
        int at = Math.floorMod(which >>> 8, label.length);
        byte before = label[at];
        label[at] = other;
        ByteBuf stored = message(labels, 0, 0);
        Message storedView = CacheHarness.parse(stored);
        ByteBuf asked = message(changed, offset + 1, 0);
        Message askedView = CacheHarness.parse(asked);
        boolean sameIgnoringCase = lower(before) == lower(other);

        assertEquals(sameIgnoringCase, Question.matches(Question.lowerCase(stored, storedView), asked, askedView));
        if (!sameIgnoringCase) {
            assertNotEquals(Question.key(stored, storedView), Question.key(asked, askedView));
        }
    }

    @Property
    void theTypeIsPartOfTheKeyAndOfTheMatch(@ForAll("labels") List<byte[]> labels) {
        ByteBuf a = message(labels, 0, 0);
        ByteBuf aaaa = message(labels, 0, 1);
        Message aView = CacheHarness.parse(a);
        Message aaaaView = CacheHarness.parse(aaaa);

        assertFalse(Question.matches(Question.lowerCase(a, aView), aaaa, aaaaView));
        assertNotEquals(Question.key(a, aView), Question.key(aaaa, aaaaView));
    }

    @Provide
    Arbitrary<List<byte[]>> labels() {
        // Every octet value, the letters' neighbours ('@', '[', '`', '{') and high octets included.
        Arbitrary<byte[]> label = Arbitraries.bytes().array(byte[].class).ofMinSize(1).ofMaxSize(20);
        return label.list().ofMinSize(1).ofMaxSize(4);
    }

    @Provide
    Arbitrary<Integer> offsets() {
        return Arbitraries.integers().between(0, 9);
    }

    private static int lower(byte b) {
        return b >= 'A' && b <= 'Z' ? b + 32 : b;
    }

    private static List<byte[]> respell(List<byte[]> labels, long caseBits) {
        int bit = 0;
        List<byte[]> out = labels.stream().map(byte[]::clone).toList();
        for (byte[] label : out) {
            for (int i = 0; i < label.length; i++, bit++) {
                byte b = label[i];
                if ((caseBits >>> (bit % 64) & 1) != 0 && (b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z')) {
                    label[i] = (byte) (b ^ 0x20);
                }
            }
        }
        return out;
    }

    /** A query for the name of {@code labels} (type A, or AAAA when {@code aaaa} is 1) after {@code offset} octets. */
    private static ByteBuf message(List<byte[]> labels, int offset, int aaaa) {
        ByteBuf buf = Unpooled.buffer().writeZero(offset);
        // IDs differ, so that a read of the name's tail that took in header octets would not match.
        buf.writeShort(0x1234 + offset * 0x0F0F + aaaa).writeShort(0x0100).writeShort(1).writeShort(0).writeShort(0).writeShort(0);
        for (byte[] label : labels) {
            buf.writeByte(label.length).writeBytes(label);
        }
        buf.writeByte(0).writeShort(aaaa == 1 ? 28 : 1).writeShort(1);
        buf.readerIndex(offset);
        return buf;
    }
}
