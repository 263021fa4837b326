package io.dotproxy.guard;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.math.BigInteger;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;

/**
 * {@link AddressSet} against a slow model of CIDR written with {@link BigInteger}: an address is in
 * a block when their first {@code prefix} bits agree. Addresses are drawn near the blocks (inside,
 * and one bit outside), where mistakes in masks live.
 */
class AddressSetPropertiesTest {
    /** A block in the model: its network's octets (4 or 16) and prefix length. */
    record Block(byte[] network, int prefix) {
        String cidr() {
            try {
                return InetAddress.getByAddress(network).getHostAddress() + "/" + prefix;
            } catch (UnknownHostException e) {
                throw new AssertionError(e);
            }
        }

        boolean holds(byte[] address) {
            if (address.length != network.length) {
                return false;
            }
            int shift = address.length * 8 - prefix;
            return new BigInteger(1, address).shiftRight(shift).equals(new BigInteger(1, network).shiftRight(shift));
        }
    }

    @Property(tries = 2000)
    void containsAgreesWithTheModel(@ForAll("blocks") @Size(max = 6) List<Block> blocks, @ForAll long seed) throws Exception {
        AddressSet set = AddressSet.parse(blocks.stream().map(Block::cidr).toList());
        Random random = new Random(seed);
        for (byte[] address : probes(blocks, random)) {
            boolean expected = blocks.stream().anyMatch(b -> b.holds(address));
            assertEquals(expected, set.contains(InetAddress.getByAddress(address)),
                    () -> text(address) + " in " + blocks.stream().map(Block::cidr).toList());
        }
    }

    @Property(tries = 1000)
    void theTextParsesBackToAnEqualSet(@ForAll("blocks") @Size(max = 8) List<Block> blocks) {
        AddressSet set = AddressSet.parse(blocks.stream().map(Block::cidr).toList());
        AddressSet again = set.isEmpty() ? AddressSet.parse(List.of()) : AddressSet.parse(List.of(set.toString().split(", ")));
        assertEquals(set, again);
        assertEquals(set.toString(), again.toString());
    }

    /** Addresses inside each block (first, last, random), one bit outside it, and random ones. */
    private static List<byte[]> probes(List<Block> blocks, Random random) {
        List<byte[]> probes = new ArrayList<>();
        for (Block block : blocks) {
            int bits = block.network.length * 8;
            BigInteger network = new BigInteger(1, block.network);
            BigInteger hostMask = BigInteger.ONE.shiftLeft(bits - block.prefix).subtract(BigInteger.ONE);
            probes.add(block.network.clone());
            probes.add(octets(network.or(hostMask), block.network.length));
            probes.add(octets(network.or(new BigInteger(bits, random).and(hostMask)), block.network.length));
            if (block.prefix > 0) {
                int flip = bits - 1 - random.nextInt(block.prefix); // a bit inside the prefix
                probes.add(octets(network.flipBit(flip), block.network.length));
                probes.add(octets(network.flipBit(bits - block.prefix), block.network.length)); // the last one
            }
        }
        byte[] any4 = new byte[4];
        random.nextBytes(any4);
        byte[] any6 = new byte[16];
        random.nextBytes(any6);
        probes.add(any4);
        probes.add(any6);
        return probes;
    }

    private static byte[] octets(BigInteger value, int length) {
        byte[] raw = value.toByteArray();
        byte[] octets = new byte[length];
        int copy = Math.min(raw.length, length);
        System.arraycopy(raw, raw.length - copy, octets, length - copy, copy);
        return octets;
    }

    @Provide
    Arbitrary<List<Block>> blocks() {
        Arbitrary<Block> v4 = Combinators.combine(Arbitraries.bytes().array(byte[].class).ofSize(4),
                Arbitraries.integers().between(0, 32)).as(AddressSetPropertiesTest::masked);
        Arbitrary<Block> v6 = Combinators.combine(Arbitraries.bytes().array(byte[].class).ofSize(16),
                Arbitraries.integers().between(0, 128)).as(AddressSetPropertiesTest::masked);
        // Shared first octets make nested and overlapping blocks likely.
        Arbitrary<Block> near = Combinators.combine(Arbitraries.of(0, 10, 127, 192), Arbitraries.integers().between(0, 3),
                Arbitraries.integers().between(0, 32)).as((first, second, prefix) -> masked(new byte[] {
                        (byte) (int) first, (byte) (int) second, 1, 2}, prefix));
        return Arbitraries.oneOf(v4, v6, near).list();
    }

    private static Block masked(byte[] address, int prefix) {
        int bits = address.length * 8;
        BigInteger mask = BigInteger.ONE.shiftLeft(bits).subtract(BigInteger.ONE)
                .xor(BigInteger.ONE.shiftLeft(bits - prefix).subtract(BigInteger.ONE));
        byte[] network = octets(new BigInteger(1, address).and(mask), address.length);
        if (network.length == 16 && AddressBits.isIpv4(network)) {
            network[0] = 0x20; // keep IPv6 blocks out of the mapped range, which the model does not know
            network = octets(new BigInteger(1, network).and(mask), 16);
        }
        return new Block(network, prefix);
    }

    private static String text(byte[] address) {
        try {
            return InetAddress.getByAddress(address).getHostAddress();
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }
}
