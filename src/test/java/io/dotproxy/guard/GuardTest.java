package io.dotproxy.guard;

import static io.dotproxy.guard.Addresses.client;
import static io.dotproxy.guard.Addresses.mapped;
import static io.dotproxy.guard.Admission.Verdict.ADMIT;
import static io.dotproxy.guard.Admission.Verdict.DROP;
import static io.dotproxy.guard.Admission.Verdict.REFUSE;
import static io.dotproxy.guard.Admission.Verdict.SLIP;
import static io.dotproxy.net.Transport.TCP;
import static io.dotproxy.net.Transport.UDP;
import static java.time.Duration.ZERO;
import static java.time.Duration.ofSeconds;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.guard.Admission.Verdict;
import io.dotproxy.net.Transport;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class GuardTest {
    private static final AddressSet PRIVATE = AddressSet.parse(AddressSet.PRIVATE_NETWORKS);
    private static final AddressSet NONE = AddressSet.parse(List.of());
    /** 1 q/s, a burst of 2, blocked at once when over, for a minute; every 2nd denied UDP query slips. */
    private static final RateLimiter.Settings LIMIT =
            new RateLimiter.Settings(1, 2, ZERO, ofSeconds(60), 2, 32, 64, 1000);

    private final FakeClock clock = new FakeClock();
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final GuardMetrics metrics = new GuardMetrics(registry);

    private Guard guard(Guard.Settings settings) {
        return new Guard(settings, metrics, clock);
    }

    private double denied(Transport transport, String result) {
        return registry.get("dotproxy.guard.denied").tags("proto", transport.tag(), "result", result)
                .functionCounter().count();
    }

    private static List<Verdict> queries(Guard guard, InetSocketAddress client, Transport transport, int count) {
        List<Verdict> verdicts = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            verdicts.add(guard.admit(client, transport));
        }
        return verdicts;
    }

    @Test
    void aClientOutsideTheAllowListIsRefusedOrOverUdpDroppedIfSoSet() {
        Guard refusing = guard(new Guard.Settings(PRIVATE, false, Optional.empty(), NONE));
        assertEquals(REFUSE, refusing.admit(client("192.0.2.1"), UDP));
        assertEquals(REFUSE, refusing.admit(client("2001:db8::1"), TCP));
        Guard dropping = guard(new Guard.Settings(PRIVATE, true, Optional.empty(), NONE));
        assertEquals(DROP, dropping.admit(client("192.0.2.1"), UDP));
        assertEquals(DROP, dropping.admit(client("2001:db8::1"), UDP));
        assertEquals(REFUSE, dropping.admit(client("192.0.2.1"), TCP), "TCP proved the address: always an answer");
        assertEquals(3, denied(UDP, "not_allowed"));
        assertEquals(2, denied(TCP, "not_allowed"));
    }

    @Test
    void anAllowedClientWithoutRateLimitIsAlwaysAdmitted() {
        Guard guard = guard(new Guard.Settings(PRIVATE, true, Optional.empty(), NONE));
        for (InetSocketAddress client : List.of(client("10.1.2.3"), client("::1"), client("fd12:3456::1"),
                client(mapped("192.168.7.7")), client("127.0.0.1"))) {
            for (Transport transport : Transport.values()) {
                assertEquals(List.of(ADMIT, ADMIT, ADMIT), queries(guard, client, transport, 3), client + " " + transport);
            }
        }
        assertEquals(DROP, guard.admit(client(mapped("8.8.8.8")), UDP), "mapped clients are matched as IPv4");
        assertEquals(0, registry.get("dotproxy.guard.clients").gauge().value());
        assertTrue(guard.limiter().isEmpty());
    }

    @Test
    void anEmptyAllowListLetsNoOneIn() {
        Guard guard = guard(new Guard.Settings(NONE, false, Optional.empty(), NONE));
        assertEquals(REFUSE, guard.admit(client("127.0.0.1"), UDP));
        assertEquals(REFUSE, guard.admit(client("::1"), TCP));
    }

    @Test
    void anUnresolvedAddressIsNotAllowed() {
        Guard guard = guard(new Guard.Settings(PRIVATE, true, Optional.empty(), NONE));
        assertEquals(DROP, guard.admit(InetSocketAddress.createUnresolved("localhost", 53), UDP));
    }

    @Test
    void allowedClientsAreRateLimitedAndTheDenialsCountedByReason() {
        Guard guard = guard(new Guard.Settings(PRIVATE, false, Optional.of(LIMIT), NONE));
        InetSocketAddress client = client("10.0.0.1");
        // Two from the burst, then over: blocked at once; every 2nd denied UDP query slips.
        assertEquals(List.of(ADMIT, ADMIT, DROP, SLIP, DROP, SLIP), queries(guard, client, UDP, 6));
        assertEquals(List.of(REFUSE, REFUSE), queries(guard, client, TCP, 2));
        assertEquals(4, denied(UDP, "blocked"));
        assertEquals(2, denied(TCP, "blocked"));
        assertEquals(1, registry.get("dotproxy.guard.blocks").functionCounter().count());
        assertEquals(1, registry.get("dotproxy.guard.clients.blocked").gauge().value());
        // Another client has its own bucket; outside the allow-list is counted apart.
        InetSocketAddress other = client("fd00::1");
        assertEquals(List.of(ADMIT, ADMIT), queries(guard, other, TCP, 2));
        assertEquals(2, registry.get("dotproxy.guard.clients").gauge().value());
        assertEquals(REFUSE, guard.admit(client("192.0.2.1"), UDP));
        assertEquals(1, denied(UDP, "not_allowed"));
        assertEquals(2, registry.get("dotproxy.guard.clients").gauge().value(), "a client refused is not tracked");
        // The block ends; the bucket is full again.
        clock.advance(ofSeconds(60));
        assertEquals(List.of(ADMIT, ADMIT), queries(guard, client, UDP, 2));
        assertEquals(0, registry.get("dotproxy.guard.clients.blocked").gauge().value());
    }

    @Test
    void aClientOverItsLimitButNotYetBlockedIsCountedRateLimited() {
        RateLimiter.Settings slow = new RateLimiter.Settings(1, 1, ofSeconds(2), ofSeconds(60), 0, 32, 64, 1000);
        Guard guard = guard(new Guard.Settings(PRIVATE, false, Optional.of(slow), NONE));
        assertEquals(List.of(ADMIT, DROP, DROP), queries(guard, client("10.0.0.1"), UDP, 3));
        assertEquals(REFUSE, guard.admit(client("10.0.0.1"), TCP));
        assertEquals(2, denied(UDP, "rate_limited"));
        assertEquals(1, denied(TCP, "rate_limited"));
        assertEquals(0, denied(UDP, "blocked"));
    }

    @Test
    void anExemptClientIsNotRateLimitedButStillNeedsTheAllowList() {
        AddressSet exempt = AddressSet.parse(List.of("10.0.0.53", "fd00::/64", "192.0.2.0/24"));
        Guard guard = guard(new Guard.Settings(PRIVATE, false, Optional.of(LIMIT), exempt));
        assertEquals(List.of(ADMIT, ADMIT, ADMIT, ADMIT, ADMIT), queries(guard, client("10.0.0.53"), UDP, 5));
        assertEquals(List.of(ADMIT, ADMIT, ADMIT, ADMIT, ADMIT), queries(guard, client("fd00::99"), TCP, 5));
        assertEquals(List.of(ADMIT, ADMIT, DROP), queries(guard, client("10.0.0.54"), UDP, 3));
        assertEquals(List.of(ADMIT, ADMIT, REFUSE), queries(guard, client("fd00:0:0:1::99"), TCP, 3));
        assertEquals(REFUSE, guard.admit(client("192.0.2.1"), UDP), "exempt from the limit, not from the allow-list");
        assertEquals(2, registry.get("dotproxy.guard.clients").gauge().value(), "exempt clients are not tracked");
    }

    @Test
    void thePublicConstructorUsesTheSystemClock() {
        Guard guard = new Guard(new Guard.Settings(PRIVATE, false, Optional.of(LIMIT), NONE), metrics);
        assertEquals(List.of(ADMIT, ADMIT, DROP), queries(guard, client("10.0.0.1"), UDP, 3));
    }

    @Test
    void settingsCompareByValue() {
        Guard.Settings one = new Guard.Settings(AddressSet.parse(List.of("10.0.0.0/8", "::1")), true,
                Optional.of(LIMIT), AddressSet.parse(List.of()));
        Guard.Settings same = new Guard.Settings(AddressSet.parse(List.of("::1/128", "10.0.0.0/8")), true,
                Optional.of(new RateLimiter.Settings(1, 2, ZERO, ofSeconds(60), 2, 32, 64, 1000)), AddressSet.parse(List.of()));
        assertEquals(one, same);
        assertEquals(one.hashCode(), same.hashCode());
        assertNotEquals(one, new Guard.Settings(one.allow(), true, Optional.empty(), one.exempt()));
        assertNotEquals(one, new Guard.Settings(one.allow(), true, one.rateLimit(), PRIVATE));
    }
}
