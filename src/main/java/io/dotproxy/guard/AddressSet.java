package io.dotproxy.guard;

import io.netty.util.NetUtil;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.StringJoiner;

/**
 * A set of IPv4 and IPv6 address blocks (CIDR, RFC 4632 and RFC 4291 section 2.3), such as an
 * allow-list. Immutable; equal to another set with the same addresses once normalized (sorted,
 * duplicates and blocks inside another block dropped), so settings that hold one compare by value.
 *
 * <p>An IPv4 client seen through an IPv4-mapped IPv6 address ({@code ::ffff:a.b.c.d}) matches the
 * IPv4 blocks; an entry written as a mapped address with a prefix of 96 or more is an IPv4 block.
 * Other IPv6 blocks match IPv6 addresses only: {@code ::/0} does not let IPv4 clients in.
 *
 * <p>{@link #contains} scans the blocks as primitive masks: lists of a few dozen entries, as
 * allow-lists are, cost nanoseconds and allocate nothing.
 */
public final class AddressSet {
    /**
     * The default allow-list: loopback (RFC 1122, RFC 4291), private IPv4 (RFC 1918), shared
     * address space (RFC 6598, carrier-grade NAT), link-local (RFC 3927, RFC 4291) and unique local
     * IPv6 (RFC 4193).
     */
    public static final List<String> PRIVATE_NETWORKS = List.of(
            "127.0.0.0/8", "::1/128",
            "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16", "fe80::/10",
            "fc00::/7");

    // IPv4 blocks as network and mask; IPv6 blocks as network and mask in high and low words.
    private final int[] v4Networks;
    private final int[] v4Masks;
    private final long[] v6NetworksHigh;
    private final long[] v6NetworksLow;
    private final long[] v6MasksHigh;
    private final long[] v6MasksLow;

    private AddressSet(List<V4Block> v4, List<V6Block> v6) {
        v4Networks = new int[v4.size()];
        v4Masks = new int[v4.size()];
        for (int i = 0; i < v4.size(); i++) {
            v4Networks[i] = v4.get(i).network;
            v4Masks[i] = AddressBits.mask32(v4.get(i).prefix);
        }
        v6NetworksHigh = new long[v6.size()];
        v6NetworksLow = new long[v6.size()];
        v6MasksHigh = new long[v6.size()];
        v6MasksLow = new long[v6.size()];
        for (int i = 0; i < v6.size(); i++) {
            V6Block block = v6.get(i);
            v6NetworksHigh[i] = block.high;
            v6NetworksLow[i] = block.low;
            v6MasksHigh[i] = highMask(block.prefix);
            v6MasksLow[i] = lowMask(block.prefix);
        }
    }

    /**
     * The set of {@code cidrs}: each an IPv4 or IPv6 literal, alone (one address) or with a
     * prefix length ({@code 10.0.0.0/8}, {@code fd00::/8}, {@code 192.168.1.7}).
     *
     * @throws IllegalArgumentException naming the first bad entry and what is wrong with it: not
     *     an address (names are never looked up), a prefix out of range, or bits set after the
     *     prefix ({@code 10.0.0.1/8} is refused rather than widened: an allow-list that silently
     *     lets in 16 million addresses when its author meant one is worse than a failed start)
     */
    public static AddressSet parse(List<String> cidrs) {
        Objects.requireNonNull(cidrs, "cidrs");
        List<V4Block> v4 = new ArrayList<>();
        List<V6Block> v6 = new ArrayList<>();
        for (String cidr : cidrs) {
            parseEntry(cidr, v4, v6);
        }
        v4.sort(Comparator.comparingLong((V4Block b) -> Integer.toUnsignedLong(b.network)).thenComparingInt(b -> b.prefix));
        v6.sort((a, b) -> {
            int byHigh = Long.compareUnsigned(a.high, b.high);
            int byLow = byHigh != 0 ? byHigh : Long.compareUnsigned(a.low, b.low);
            return byLow != 0 ? byLow : Integer.compare(a.prefix, b.prefix);
        });
        // Blocks nest or are disjoint, so in this order a block inside another comes right after
        // the enclosing one or after blocks inside it: comparing with the last kept block is enough.
        List<V4Block> keptV4 = new ArrayList<>();
        for (V4Block block : v4) {
            V4Block last = keptV4.isEmpty() ? null : keptV4.get(keptV4.size() - 1);
            if (last == null || (block.network & AddressBits.mask32(last.prefix)) != last.network) {
                keptV4.add(block);
            }
        }
        List<V6Block> keptV6 = new ArrayList<>();
        for (V6Block block : v6) {
            V6Block last = keptV6.isEmpty() ? null : keptV6.get(keptV6.size() - 1);
            if (last == null || (block.high & highMask(last.prefix)) != last.high
                    || (block.low & lowMask(last.prefix)) != last.low) {
                keptV6.add(block);
            }
        }
        return new AddressSet(keptV4, keptV6);
    }

    private static void parseEntry(String raw, List<V4Block> v4, List<V6Block> v6) {
        String entry = raw == null ? "" : raw.strip();
        if (entry.isEmpty()) {
            throw bad(entry, "empty entry");
        }
        int slash = entry.indexOf('/');
        String ip = slash < 0 ? entry : entry.substring(0, slash);
        if (ip.indexOf('%') >= 0) {
            // A zone (RFC 6874) names an interface of this host: meaningless in a list of networks.
            throw bad(entry, "zone index not allowed");
        }
        if (ip.startsWith("[")) {
            throw bad(entry, "write the address without brackets");
        }
        byte[] octets = NetUtil.createByteArrayFromIpAddressString(ip);
        if (octets == null) {
            throw bad(entry, "not an IPv4 or IPv6 address (host names are not looked up)");
        }
        if (hasLeadingZeroOctet(ip)) {
            // inet_aton reads 010 as octal 8, others as decimal 10 (CVE-2021-29921): refuse to guess.
            throw bad(entry, "leading zero in an IPv4 octet");
        }
        int bits = octets.length * 8;
        int prefix = slash < 0 ? bits : parsePrefix(entry.substring(slash + 1), bits, entry);
        if (octets.length == 16 && AddressBits.isIpv4(octets) && prefix >= 96) {
            // ::ffff:10.0.0.0/104 is 10.0.0.0/8, and matches IPv4 clients as that would.
            octets = Arrays.copyOfRange(octets, 12, 16);
            prefix -= 96;
        }
        if (octets.length == 4) {
            int address = AddressBits.ipv4(octets);
            int network = address & AddressBits.mask32(prefix);
            if (network != address) {
                throw hostBitsSet(entry, AddressBits.ipv4Text(network), AddressBits.ipv4Text(address), prefix, 32);
            }
            v4.add(new V4Block(network, prefix));
        } else {
            long high = AddressBits.high(octets);
            long low = AddressBits.low(octets);
            long networkHigh = high & highMask(prefix);
            long networkLow = low & lowMask(prefix);
            if (networkHigh != high || networkLow != low) {
                throw hostBitsSet(entry, AddressBits.ipv6Text(networkHigh, networkLow),
                        AddressBits.ipv6Text(high, low), prefix, 128);
            }
            v6.add(new V6Block(high, low, prefix));
        }
    }

    private static int parsePrefix(String text, int bits, String entry) {
        // Digits only, at most three: no sign, no spaces, nothing that overflows.
        if (text.isEmpty() || text.length() > 3 || !text.chars().allMatch(c -> c >= '0' && c <= '9')
                || Integer.parseInt(text) > bits) {
            throw bad(entry, "prefix length must be 0 to " + bits);
        }
        return Integer.parseInt(text);
    }

    private static boolean hasLeadingZeroOctet(String ip) {
        // The dotted part of an IPv4 address, or of an IPv6 address ending in one (::ffff:a.b.c.d).
        String dotted = ip.substring(ip.lastIndexOf(':') + 1);
        if (dotted.indexOf('.') < 0) {
            return false;
        }
        for (String octet : dotted.split("\\.")) {
            if (octet.length() > 1 && octet.charAt(0) == '0') {
                return true;
            }
        }
        return false;
    }

    private static IllegalArgumentException hostBitsSet(String entry, String network, String address, int prefix, int bits) {
        return bad(entry, "bits set after the prefix; write " + network + "/" + prefix + " for the block or "
                + address + "/" + bits + " for the address");
    }

    private static IllegalArgumentException bad(String entry, String why) {
        return new IllegalArgumentException("'" + entry + "': " + why);
    }

    /** Whether {@code address} is in one of the blocks. */
    public boolean contains(InetAddress address) {
        byte[] octets = address.getAddress();
        if (octets.length == 4) {
            return containsIpv4(AddressBits.ipv4(octets));
        }
        long high = AddressBits.high(octets);
        long low = AddressBits.low(octets);
        return AddressBits.isMapped(high, low) ? containsIpv4((int) low) : containsIpv6(high, low);
    }

    /** Whether the IPv4 address {@code address} is in one of the blocks. */
    boolean containsIpv4(int address) {
        for (int i = 0; i < v4Networks.length; i++) {
            if ((address & v4Masks[i]) == v4Networks[i]) {
                return true;
            }
        }
        return false;
    }

    /** Whether the IPv6 address with these high and low 64 bits is in one of the blocks. */
    boolean containsIpv6(long high, long low) {
        for (int i = 0; i < v6NetworksHigh.length; i++) {
            if ((high & v6MasksHigh[i]) == v6NetworksHigh[i] && (low & v6MasksLow[i]) == v6NetworksLow[i]) {
                return true;
            }
        }
        return false;
    }

    /** True when no address is in the set. */
    public boolean isEmpty() {
        return v4Networks.length == 0 && v6NetworksHigh.length == 0;
    }

    private static long highMask(int prefix) {
        return AddressBits.mask64(Math.min(prefix, 64));
    }

    private static long lowMask(int prefix) {
        return AddressBits.mask64(Math.max(prefix - 64, 0));
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof AddressSet that
                && Arrays.equals(v4Networks, that.v4Networks) && Arrays.equals(v4Masks, that.v4Masks)
                && Arrays.equals(v6NetworksHigh, that.v6NetworksHigh) && Arrays.equals(v6NetworksLow, that.v6NetworksLow)
                && Arrays.equals(v6MasksHigh, that.v6MasksHigh) && Arrays.equals(v6MasksLow, that.v6MasksLow);
    }

    @Override
    public int hashCode() {
        return Objects.hash(Arrays.hashCode(v4Networks), Arrays.hashCode(v4Masks), Arrays.hashCode(v6NetworksHigh),
                Arrays.hashCode(v6NetworksLow), Arrays.hashCode(v6MasksHigh), Arrays.hashCode(v6MasksLow));
    }

    /** The normalized blocks, IPv4 first, as CIDRs separated by ", " (each parses back to itself). */
    @Override
    public String toString() {
        StringJoiner text = new StringJoiner(", ");
        for (int i = 0; i < v4Networks.length; i++) {
            text.add(AddressBits.ipv4Text(v4Networks[i]) + "/" + Integer.bitCount(v4Masks[i]));
        }
        for (int i = 0; i < v6NetworksHigh.length; i++) {
            text.add(AddressBits.ipv6Text(v6NetworksHigh[i], v6NetworksLow[i]) + "/"
                    + (Long.bitCount(v6MasksHigh[i]) + Long.bitCount(v6MasksLow[i])));
        }
        return text.toString();
    }

    private record V4Block(int network, int prefix) {}

    private record V6Block(long high, long low, int prefix) {}
}
