package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;

/**
 * Domain names in wire form (RFC 1035 §3.1, §4.1.4), checked defensively.
 *
 * <p>A compression pointer must point strictly backwards, past the header, and inside the message,
 * so a chain of pointers always ends. A name can still loop through its own labels (a label, then
 * a pointer back to it): the 255-octet limit on a name's length is what stops that. The reserved
 * label types (0b01, 0b10) are rejected.
 */
public final class Names {
    /** Longest name in wire form, root label included (RFC 1035 §2.3.4). */
    public static final int MAX_WIRE_LENGTH = 255;

    private static final int POINTER = 0xC0;

    private Names() {}

    /**
     * Returns the index just past the name that starts at {@code offset}: past its root label, or
     * past the two octets of the pointer that ends it. Pointers are checked, not followed.
     *
     * @param start index of the first header octet (pointer offsets count from there)
     * @param end index just past the last octet of the message
     */
    public static int skip(ByteBuf buf, int start, int offset, int end) throws WireFormatException {
        int pos = offset;
        int length = 0;
        while (true) {
            if (pos >= end) {
                throw new WireFormatException("name runs past the end of the message");
            }
            int len = buf.getUnsignedByte(pos);
            if (len == 0) {
                return pos + 1;
            }
            if ((len & POINTER) == POINTER) {
                pointerTarget(buf, start, pos, end);
                return pos + 2;
            }
            if ((len & POINTER) != 0) {
                throw new WireFormatException("reserved label type 0x" + Integer.toHexString(len & POINTER));
            }
            length += len + 1;
            if (length + 1 > MAX_WIRE_LENGTH) {
                throw new WireFormatException("name longer than 255 octets");
            }
            pos += len + 1;
        }
    }

    /**
     * Compares two names ASCII-case-insensitively (RFC 4343), following compression pointers in
     * either. The two names may sit in different messages.
     */
    public static boolean equalsIgnoreCase(ByteBuf a, int aStart, int aOffset, int aEnd,
                                           ByteBuf b, int bStart, int bOffset, int bEnd)
            throws WireFormatException {
        int pa = aOffset;
        int pb = bOffset;
        int length = 0;
        while (true) {
            pa = followPointers(a, aStart, pa, aEnd);
            pb = followPointers(b, bStart, pb, bEnd);
            int la = a.getUnsignedByte(pa);
            int lb = b.getUnsignedByte(pb);
            if ((la & POINTER) != 0 || (lb & POINTER) != 0) {
                throw new WireFormatException("reserved label type");
            }
            if (la != lb) {
                return false;
            }
            if (la == 0) {
                return true;
            }
            length += la + 1;
            if (length + 1 > MAX_WIRE_LENGTH || pa + 1 + la > aEnd || pb + 1 + lb > bEnd) {
                throw new WireFormatException("name runs past the end of the message or 255 octets");
            }
            for (int i = 1; i <= la; i++) {
                if (toLower(a.getByte(pa + i)) != toLower(b.getByte(pb + i))) {
                    return false;
                }
            }
            pa += la + 1;
            pb += lb + 1;
        }
    }

    /** Returns the index of the next label, after following any chain of pointers at {@code pos}. */
    private static int followPointers(ByteBuf buf, int start, int pos, int end) throws WireFormatException {
        while (true) {
            if (pos >= end) {
                throw new WireFormatException("name runs past the end of the message");
            }
            if ((buf.getUnsignedByte(pos) & POINTER) != POINTER) {
                return pos;
            }
            pos = pointerTarget(buf, start, pos, end);
        }
    }

    private static int pointerTarget(ByteBuf buf, int start, int pos, int end) throws WireFormatException {
        if (pos + 2 > end) {
            throw new WireFormatException("compression pointer runs past the end of the message");
        }
        int target = start + (buf.getUnsignedShort(pos) & 0x3FFF);
        if (target >= pos || target < start + Header.LENGTH) {
            throw new WireFormatException("compression pointer does not point backwards into the message");
        }
        return target;
    }

    private static int toLower(byte b) {
        return b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b;
    }
}
