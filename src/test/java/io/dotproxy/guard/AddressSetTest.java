package io.dotproxy.guard;

import static io.dotproxy.guard.Addresses.ip;
import static io.dotproxy.guard.Addresses.mapped;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.Inet6Address;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

class AddressSetTest {
    private static AddressSet set(String... cidrs) {
        return AddressSet.parse(List.of(cidrs));
    }

    @Test
    void anIpv4BlockHoldsItsFirstAndLastAddressAndNothingAround() {
        AddressSet set = set("10.0.0.0/8", "192.168.1.0/24");
        assertTrue(set.contains(ip("10.0.0.0")));
        assertTrue(set.contains(ip("10.255.255.255")));
        assertFalse(set.contains(ip("9.255.255.255")));
        assertFalse(set.contains(ip("11.0.0.0")));
        assertTrue(set.contains(ip("192.168.1.0")));
        assertTrue(set.contains(ip("192.168.1.255")));
        assertFalse(set.contains(ip("192.168.0.255")));
        assertFalse(set.contains(ip("192.168.2.0")));
    }

    @Test
    void anIpv6BlockHoldsItsFirstAndLastAddressAndNothingAroundOnEitherSideOfBit64() {
        AddressSet set = set("2001:db8::/32", "fe80::/10", "2001:db9:0:0:1::/80");
        assertTrue(set.contains(ip("2001:db8::")));
        assertTrue(set.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assertFalse(set.contains(ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")));
        assertTrue(set.contains(ip("fe80::")));
        assertTrue(set.contains(ip("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assertFalse(set.contains(ip("fec0::")));
        // A prefix longer than 64: the low word is masked too.
        assertTrue(set.contains(ip("2001:db9:0:0:1::")));
        assertTrue(set.contains(ip("2001:db9:0:0:1:ffff:ffff:ffff")));
        assertFalse(set.contains(ip("2001:db9:0:0:0:ffff:ffff:ffff")));
        assertFalse(set.contains(ip("2001:db9:0:0:2::")));
    }

    @Test
    void anEntryWithoutPrefixIsOneAddress() {
        AddressSet set = set("192.168.1.7", "2001:db8::7");
        assertTrue(set.contains(ip("192.168.1.7")));
        assertFalse(set.contains(ip("192.168.1.6")));
        assertFalse(set.contains(ip("192.168.1.8")));
        assertTrue(set.contains(ip("2001:db8::7")));
        assertFalse(set.contains(ip("2001:db8::6")));
        assertFalse(set.contains(ip("2001:db8::8")));
        assertEquals("192.168.1.7/32, 2001:db8::7/128", set.toString());
    }

    @Test
    void slashZeroHoldsEveryAddressOfItsFamilyOnly() {
        AddressSet v4 = set("0.0.0.0/0");
        assertTrue(v4.contains(ip("0.0.0.0")));
        assertTrue(v4.contains(ip("255.255.255.255")));
        assertTrue(v4.contains(mapped("203.0.113.9")));
        assertFalse(v4.contains(ip("::1")));
        AddressSet v6 = set("::/0");
        assertTrue(v6.contains(ip("::")));
        assertTrue(v6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assertFalse(v6.contains(ip("203.0.113.9")), "IPv4 clients match IPv4 blocks only");
    }

    @Test
    void anIpv4MappedClientMatchesTheIpv4Blocks() {
        Inet6Address client = mapped("10.1.2.3");
        assertInstanceOf(Inet6Address.class, client);
        assertTrue(set("10.0.0.0/8").contains(client));
        assertFalse(set("11.0.0.0/8").contains(client));
        assertFalse(set("::/0").contains(mapped("10.1.2.3")));
    }

    @Test
    void aMappedEntryOfPrefix96OrMoreIsAnIpv4Block() {
        assertEquals(set("10.0.0.0/8"), set("::ffff:10.0.0.0/104"));
        assertEquals(set("10.1.2.3/32"), set("::ffff:10.1.2.3"));
        assertTrue(set("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
    }

    @Test
    void thePrivateNetworksAreLoopbackRfc1918SharedLinkLocalAndUniqueLocal() {
        AddressSet set = AddressSet.parse(AddressSet.PRIVATE_NETWORKS);
        for (String inside : List.of("127.0.0.1", "127.255.255.255", "::1", "10.0.0.1", "172.16.0.0",
                "172.31.255.255", "192.168.0.1", "100.64.0.0", "100.127.255.255", "169.254.1.1", "fe80::1",
                "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")) {
            assertTrue(set.contains(ip(inside)), inside);
        }
        assertTrue(set.contains(mapped("192.168.0.1")));
        for (String outside : List.of("8.8.8.8", "172.15.255.255", "172.32.0.0", "100.63.255.255", "100.128.0.0",
                "192.169.0.0", "::", "::2", "2001:4860:4860::8888", "fec0::", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                "fe00::")) {
            assertFalse(set.contains(ip(outside)), outside);
        }
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "10.0.0.0/33      | '10.0.0.0/33': prefix length must be 0 to 32",
        "::1/129          | '::1/129': prefix length must be 0 to 128",
        "10.0.0.0/        | '10.0.0.0/': prefix length must be 0 to 32",
        "10.0.0.0/-1      | '10.0.0.0/-1': prefix length must be 0 to 32",
        "10.0.0.0/+8      | '10.0.0.0/+8': prefix length must be 0 to 32",
        "10.0.0.0/0008    | '10.0.0.0/0008': prefix length must be 0 to 32",
        "10.0.0.0/8/8     | '10.0.0.0/8/8': prefix length must be 0 to 32",
        "example.com      | 'example.com': not an IPv4 or IPv6 address (host names are not looked up)",
        "1.2.3            | '1.2.3': not an IPv4 or IPv6 address (host names are not looked up)",
        "1.2.3.256        | '1.2.3.256': not an IPv4 or IPv6 address (host names are not looked up)",
        "1::2::3/64       | '1::2::3/64': not an IPv4 or IPv6 address (host names are not looked up)",
        "10.0.0.1/8       | '10.0.0.1/8': bits set after the prefix; write 10.0.0.0/8 for the block or 10.0.0.1/32 for the address",
        "2001:db8::1/32   | '2001:db8::1/32': bits set after the prefix; write 2001:db8::/32 for the block or 2001:db8::1/128 for the address",
        "fe80::1%eth0     | 'fe80::1%eth0': zone index not allowed",
        "[::1]            | '[::1]': write the address without brackets",
        "010.0.0.1        | '010.0.0.1': leading zero in an IPv4 octet",
        "::ffff:10.0.0.01 | '::ffff:10.0.0.01': leading zero in an IPv4 octet",
    })
    void aBadEntryIsNamedWithWhatIsWrong(String entry, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AddressSet.parse(List.of("192.168.0.0/16", entry, "::1")));
        assertEquals(message, e.getMessage());
    }

    @Test
    void anEmptyEntryIsBadAndSpacesAroundAnEntryAreNot() {
        assertEquals("'': empty entry",
                assertThrows(IllegalArgumentException.class, () -> set("10.0.0.0/8", "  ")).getMessage());
        assertEquals(set("10.0.0.0/8"), set(" 10.0.0.0/8\t"));
    }

    @Test
    void setsAreEqualByTheirAddressesWhateverTheOrderDuplicatesOrNestedBlocks() {
        AddressSet plain = set("10.0.0.0/8", "::1");
        AddressSet messy = set("::1/128", "10.1.0.0/16", "10.0.0.0/8", "10.0.0.0/8", "10.200.3.4", "::1");
        assertEquals(plain, messy);
        assertEquals(plain.hashCode(), messy.hashCode());
        assertEquals("10.0.0.0/8, ::1/128", messy.toString());
        assertNotEquals(plain, set("10.0.0.0/9", "::1"));
        assertNotEquals(plain, set("10.0.0.0/8", "::2"));
        assertNotEquals(plain, set("10.0.0.0/8"));
        // A block inside a later one, and two disjoint blocks inside a third, all go.
        assertEquals(set("10.0.0.0/8", "2001:db8::/32"),
                set("10.20.0.0/16", "10.20.30.0/24", "10.0.0.0/8", "2001:db8:1::/48", "2001:db8::/32", "2001:db8:2::1"));
        // Adjacent blocks are not merged: each stays as written.
        assertEquals("10.0.0.0/9, 10.128.0.0/9", set("10.128.0.0/9", "10.0.0.0/9").toString());
    }

    @Test
    void anEmptySetHoldsNothing() {
        AddressSet empty = set();
        assertTrue(empty.isEmpty());
        assertFalse(empty.contains(ip("127.0.0.1")));
        assertFalse(empty.contains(ip("::1")));
        assertEquals("", empty.toString());
        assertEquals(empty, set());
        assertFalse(set("::1").isEmpty());
        assertFalse(set("127.0.0.1").isEmpty());
    }

    @Test
    void theTextParsesBackToAnEqualSet() {
        AddressSet set = AddressSet.parse(AddressSet.PRIVATE_NETWORKS);
        assertEquals(set, AddressSet.parse(List.of(set.toString().split(", "))));
        assertEquals("10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, "
                + "::1/128, fc00::/7, fe80::/10", set.toString());
    }
}
