package io.dotproxy.guard;

import io.netty.util.NetUtil;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;

/** Addresses for tests, from literals only (no lookups). */
final class Addresses {
    private Addresses() {}

    /** The address of an IPv4 or IPv6 literal. */
    static InetAddress ip(String literal) {
        byte[] octets = NetUtil.createByteArrayFromIpAddressString(literal);
        if (octets == null) {
            throw new IllegalArgumentException("not a literal: " + literal);
        }
        try {
            return InetAddress.getByAddress(octets);
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    /**
     * The IPv4-mapped IPv6 address of an IPv4 literal, kept an {@link Inet6Address} (as a
     * dual-stack socket may report it; {@link InetAddress#getByAddress(byte[])} would turn it into
     * an IPv4 address).
     */
    static Inet6Address mapped(String ipv4) {
        byte[] octets = new byte[16];
        octets[10] = (byte) 0xFF;
        octets[11] = (byte) 0xFF;
        System.arraycopy(NetUtil.createByteArrayFromIpAddressString(ipv4), 0, octets, 12, 4);
        try {
            return Inet6Address.getByAddress(null, octets, -1);
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    /** A client's socket address with this address. */
    static InetSocketAddress client(InetAddress address) {
        return new InetSocketAddress(address, 40_000);
    }

    /** A client's socket address with the address of this literal. */
    static InetSocketAddress client(String literal) {
        return client(ip(literal));
    }
}
