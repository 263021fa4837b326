package io.dotproxy.guard;

import io.netty.util.NetUtil;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * An address's raw octets read as primitives, so that matching and keying need no objects: an IPv4
 * address as an {@code int}, an IPv6 address as two {@code long}s (high and low 64 bits).
 */
final class AddressBits {
    private AddressBits() {}

    // One 8-octet load each, where reading octet by octet costs eight.
    private static final VarHandle BIG_ENDIAN_LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);

    /**
     * True for an IPv4 address, and for an IPv4-mapped IPv6 address ({@code ::ffff:a.b.c.d},
     * RFC 4291 section 2.5.5.2), which a dual-stack socket may report for an IPv4 client: both are
     * matched and keyed as IPv4, with {@link #ipv4(byte[])}.
     */
    static boolean isIpv4(byte[] octets) {
        return octets.length == 4 || isMapped(high(octets), low(octets));
    }

    /** True for the IPv6 address {@code ::ffff:a.b.c.d}, whose IPv4 address is {@code (int) low}. */
    static boolean isMapped(long high, long low) {
        return high == 0 && low >>> 32 == 0xFFFFL;
    }

    /** The IPv4 address in {@code octets} (4 octets, or the last 4 of a mapped address). */
    static int ipv4(byte[] octets) {
        // Octet by octet at constant offsets: the JIT can then drop the array that
        // Inet4Address.getAddress() makes, which a VarHandle read would keep.
        int at = octets.length - 4;
        return (octets[at] & 0xFF) << 24 | (octets[at + 1] & 0xFF) << 16 | (octets[at + 2] & 0xFF) << 8
                | octets[at + 3] & 0xFF;
    }

    /** The high 64 bits of a 16-octet address. */
    static long high(byte[] octets) {
        return (long) BIG_ENDIAN_LONG.get(octets, 0);
    }

    /** The low 64 bits of a 16-octet address. */
    static long low(byte[] octets) {
        return (long) BIG_ENDIAN_LONG.get(octets, 8);
    }

    /** The mask of the first {@code prefix} bits (0 to 32) of an IPv4 address. */
    static int mask32(int prefix) {
        // A shift by 32 is a shift by 0 in Java: /0 needs its own case.
        return prefix == 0 ? 0 : -1 << (32 - prefix);
    }

    /** The mask of the first {@code prefix} bits (0 to 64) of a 64-bit word. */
    static long mask64(int prefix) {
        return prefix == 0 ? 0 : -1L << (64 - prefix);
    }

    /** The text of an IPv4 address. */
    static String ipv4Text(int address) {
        return (address >>> 24) + "." + (address >>> 16 & 0xFF) + "." + (address >>> 8 & 0xFF) + "." + (address & 0xFF);
    }

    /** The text of an IPv6 address in the form of RFC 5952 (zeros compressed, lower case). */
    static String ipv6Text(long high, long low) {
        byte[] octets = new byte[16];
        for (int i = 0; i < 8; i++) {
            octets[i] = (byte) (high >>> (56 - 8 * i));
            octets[8 + i] = (byte) (low >>> (56 - 8 * i));
        }
        return NetUtil.bytesToIpAddress(octets);
    }
}
