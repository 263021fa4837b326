package io.dotproxy.guard;

import static io.dotproxy.guard.Addresses.ip;
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
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.guard.Admission.Verdict;
import io.dotproxy.net.Transport;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class RateLimiterTest {
    private final FakeClock clock = new FakeClock();
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final GuardMetrics metrics = new GuardMetrics(registry);

    /** A limit that blocks after 2 s over it, for 60 s, never slips, one client per host. */
    private static RateLimiter.Settings limit(double qps, int burst) {
        return new RateLimiter.Settings(qps, burst, ofSeconds(2), ofSeconds(60), 0, 32, 64, 100_000);
    }

    private RateLimiter limiter(RateLimiter.Settings settings) {
        return new RateLimiter(settings, metrics, clock);
    }

    private static Verdict udp(RateLimiter limiter, String client) {
        return limiter.check(ip(client), UDP);
    }

    private static List<Verdict> queries(RateLimiter limiter, InetAddress client, Transport transport, int count) {
        List<Verdict> verdicts = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            verdicts.add(limiter.check(client, transport));
        }
        return verdicts;
    }

    private static List<Verdict> times(int count, Verdict verdict) {
        return Collections.nCopies(count, verdict);
    }

    private double denied(Transport transport, String result) {
        return registry.get("dotproxy.guard.denied").tags("proto", transport.tag(), "result", result)
                .functionCounter().count();
    }

    private double blocks() {
        return registry.get("dotproxy.guard.blocks").functionCounter().count();
    }

    @Test
    void aBurstAtOnceThenQpsAndTheBucketHoldsNoMoreThanTheBurst() {
        RateLimiter limiter = limiter(limit(10, 5));
        InetAddress client = ip("192.0.2.1");
        assertEquals(times(5, ADMIT), queries(limiter, client, UDP, 5));
        assertEquals(DROP, limiter.check(client, UDP));
        clock.advanceMillis(50); // half a token
        assertEquals(DROP, limiter.check(client, UDP));
        clock.advanceMillis(50);
        assertEquals(List.of(ADMIT, DROP), queries(limiter, client, UDP, 2));
        clock.advanceMillis(250); // two and a half tokens
        assertEquals(List.of(ADMIT, ADMIT, DROP), queries(limiter, client, UDP, 3));
        clock.advance(ofSeconds(10)); // a hundred tokens' time, five tokens' room
        assertEquals(List.of(ADMIT, ADMIT, ADMIT, ADMIT, ADMIT, DROP), queries(limiter, client, UDP, 6));
        assertEquals(5, denied(UDP, "rate_limited"));
    }

    @Test
    void aRateBelowOneQueryASecond() {
        RateLimiter limiter = limiter(limit(0.5, 1));
        assertEquals(ADMIT, udp(limiter, "192.0.2.1"));
        assertEquals(DROP, udp(limiter, "192.0.2.1"));
        clock.advance(ofSeconds(1));
        assertEquals(DROP, udp(limiter, "192.0.2.1"));
        clock.advance(ofSeconds(1));
        assertEquals(ADMIT, udp(limiter, "192.0.2.1"));
    }

    @Test
    void ipv4ClientsAreTheirAddressMaskedToThePrefixAndMappedOnesAreIpv4() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(1, 1, ofSeconds(2), ofSeconds(60), 0, 24, 64, 100));
        assertEquals(ADMIT, udp(limiter, "10.0.0.1"));
        assertEquals(DROP, udp(limiter, "10.0.0.200"), "the same /24");
        assertEquals(DROP, limiter.check(mapped("10.0.0.7"), UDP), "the same /24, mapped");
        assertEquals(ADMIT, udp(limiter, "10.0.1.1"));
        assertEquals(ADMIT, limiter.check(mapped("10.0.2.1"), UDP));
        assertEquals(DROP, udp(limiter, "10.0.2.99"));
        assertEquals(3, limiter.trackedClients());
    }

    @Test
    void aHostIsItsIpv4AddressByDefault() {
        RateLimiter limiter = limiter(limit(1, 1));
        assertEquals(ADMIT, udp(limiter, "10.0.0.1"));
        assertEquals(ADMIT, udp(limiter, "10.0.0.2"));
        assertEquals(DROP, udp(limiter, "10.0.0.1"));
    }

    @Test
    void ipv6ClientsAreTheirSlash64ByDefault() {
        RateLimiter limiter = limiter(limit(1, 1));
        assertEquals(ADMIT, udp(limiter, "2001:db8:0:1::1"));
        assertEquals(DROP, udp(limiter, "2001:db8:0:1:ffff:ffff:ffff:ffff"), "the same /64");
        assertEquals(ADMIT, udp(limiter, "2001:db8:0:2::1"));
        assertEquals(ADMIT, udp(limiter, "2001:db8:1:1::1"));
        assertEquals(3, limiter.trackedClients());
    }

    @Test
    void ipv6ClientsCanBeTheirSlash48() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(1, 1, ofSeconds(2), ofSeconds(60), 0, 32, 48, 100));
        assertEquals(ADMIT, udp(limiter, "2001:db8:0:1::1"));
        assertEquals(DROP, udp(limiter, "2001:db8:0:ffff::1"), "the same /48");
        assertEquals(ADMIT, udp(limiter, "2001:db8:1::1"));
        assertEquals(ADMIT, udp(limiter, "2001:db9::1"));
    }

    @Test
    void anIpv4AndAnIpv6ClientWithTheSameKeyBitsAreTwoClients() {
        RateLimiter limiter = limiter(limit(1, 1));
        assertEquals(ADMIT, udp(limiter, "10.0.0.1"));
        assertEquals(ADMIT, udp(limiter, "0:0:a00:1::"), "top 64 bits 0x000000000a000001, as 10.0.0.1");
        assertEquals(DROP, udp(limiter, "10.0.0.1"));
        assertEquals(DROP, udp(limiter, "0:0:a00:1::"));
        assertEquals(2, limiter.trackedClients());
    }

    @Test
    void overUdpALimitedQueryIsDroppedAndOverTcpRefusedFromTheSameBucket() {
        RateLimiter limiter = limiter(limit(10, 2));
        InetAddress client = ip("192.0.2.1");
        assertEquals(ADMIT, limiter.check(client, TCP));
        assertEquals(ADMIT, limiter.check(client, UDP));
        assertEquals(REFUSE, limiter.check(client, TCP));
        assertEquals(DROP, limiter.check(client, UDP));
        assertEquals(1, denied(TCP, "rate_limited"));
        assertEquals(1, denied(UDP, "rate_limited"));
    }

    /**
     * A client sending 20 q/s against 10 q/s keeps getting a token now and then, but is still over
     * its limit: blocked 2 s after it first ran out, not a query earlier.
     */
    @Test
    void aClientStillOverItsLimitIsBlockedBlockAfterItFirstRanOutAndNotBefore() {
        RateLimiter limiter = limiter(limit(10, 2));
        InetAddress client = ip("192.0.2.1");
        long ranOutAt = -1;
        int admittedWhileOver = 0;
        for (int ms = 0; ; ms += 50) {
            Verdict verdict = limiter.check(client, UDP);
            if (ranOutAt < 0 && verdict == DROP) {
                ranOutAt = ms;
            }
            if (ranOutAt >= 0 && ms - ranOutAt < 2000) {
                assertEquals(0, limiter.blockedClients(), "not blocked at " + ms + " ms");
                admittedWhileOver += verdict == ADMIT ? 1 : 0;
            } else if (ranOutAt >= 0) {
                assertEquals(2000, ms - ranOutAt, "blocked with the first query 2 s over");
                assertEquals(DROP, verdict);
                assertEquals(1, limiter.blockedClients());
                break;
            }
            clock.advanceMillis(50);
        }
        assertEquals(150, ranOutAt, "the burst of two, then the token that 100 ms gave back");
        assertEquals(20, admittedWhileOver, "the limit let 10 q/s through");
        assertEquals(1, blocks());
        assertEquals(1, denied(UDP, "blocked"));
        // Blocked: nothing gets through, whatever it waits.
        clock.advance(ofSeconds(30));
        assertEquals(times(3, DROP), queries(limiter, client, UDP, 3));
        assertEquals(REFUSE, limiter.check(client, TCP));
        assertEquals(4, denied(UDP, "blocked"));
        assertEquals(1, denied(TCP, "blocked"));
        assertEquals(1, blocks());
    }

    @Test
    void aClientThatGetsATokenBackInBetweenStartsOver() {
        RateLimiter limiter = limiter(limit(10, 2));
        InetAddress client = ip("192.0.2.1");
        assertEquals(List.of(ADMIT, ADMIT, DROP), queries(limiter, client, UDP, 3)); // ran out at 0 ms
        for (int i = 0; i < 30; i++) { // 1.5 s at 20 q/s
            clock.advanceMillis(50);
            limiter.check(client, UDP);
        }
        clock.advanceMillis(100); // one token's time: it slowed down
        assertEquals(ADMIT, limiter.check(client, UDP));
        assertEquals(DROP, limiter.check(client, UDP)); // ran out again, at 1.6 s
        for (int i = 0; i < 39; i++) { // to 3.55 s, 3.55 s after it first ran out
            clock.advanceMillis(50);
            limiter.check(client, UDP);
        }
        assertEquals(0, limiter.blockedClients());
        clock.advanceMillis(50); // 2 s after it ran out again, with a token
        assertEquals(ADMIT, limiter.check(client, UDP));
        assertEquals(0, limiter.blockedClients());
        clock.advanceMillis(50); // the first denial 2 s after
        assertEquals(DROP, limiter.check(client, UDP));
        assertEquals(1, limiter.blockedClients());
    }

    @Test
    void aPauseShorterThanOneTokensTimeIsNoPause() {
        RateLimiter limiter = limiter(limit(10, 1));
        InetAddress client = ip("192.0.2.1");
        assertEquals(List.of(ADMIT, DROP), queries(limiter, client, UDP, 2));
        for (int i = 0; i < 21; i++) { // 2.079 s
            clock.advanceMillis(99);
            limiter.check(client, UDP);
        }
        assertEquals(1, limiter.blockedClients());
    }

    @Test
    void aBlockEndsByItselfAndTheBucketStartsFull() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(10, 3, ZERO, ofSeconds(60), 0, 32, 64, 100));
        InetAddress client = ip("192.0.2.1");
        assertEquals(List.of(ADMIT, ADMIT, ADMIT, DROP), queries(limiter, client, UDP, 4)); // blocked at once
        assertEquals(1, limiter.blockedClients());
        clock.advance(ofSeconds(60).minusNanos(1));
        assertEquals(DROP, limiter.check(client, UDP));
        clock.advance(Duration.ofNanos(1));
        assertEquals(List.of(ADMIT, ADMIT, ADMIT, DROP), queries(limiter, client, UDP, 4), "full again, then blocked again");
        assertEquals(2, blocks());
        // Another block ends while the client is silent; another client's query notices.
        clock.advance(ofSeconds(60));
        assertEquals(ADMIT, udp(limiter, "192.0.2.2"));
        assertEquals(0, limiter.blockedClients());
    }

    @Test
    void aZeroBlockTimeNeverBlocks() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(1, 1, ZERO, ZERO, 0, 32, 64, 100));
        InetAddress client = ip("192.0.2.1");
        for (int i = 0; i < 100; i++) {
            limiter.check(client, UDP);
            clock.advanceMillis(100);
        }
        assertEquals(0, limiter.blockedClients());
        assertEquals(0, blocks());
        assertEquals(90, denied(UDP, "rate_limited"));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 3, 5})
    void overUdpEverySlipThDeniedQueryOfAClientSlipsLimitedOrBlocked(int slip) {
        // A token every 10 s: still over its limit 2 s after running out.
        RateLimiter limiter = limiter(new RateLimiter.Settings(0.1, 1, ofSeconds(2), ofSeconds(60), slip, 32, 64, 100));
        InetAddress client = ip("192.0.2.1");
        InetAddress other = ip("192.0.2.2");
        assertEquals(ADMIT, limiter.check(client, UDP));
        assertEquals(ADMIT, limiter.check(other, UDP));
        List<Verdict> limited = queries(limiter, client, UDP, 15);
        assertEquals(0, limiter.blockedClients());
        clock.advance(ofSeconds(2));
        List<Verdict> blocked = queries(limiter, client, UDP, 15);
        assertEquals(1, limiter.blockedClients());
        List<Verdict> all = new ArrayList<>(limited);
        all.addAll(blocked);
        for (int i = 0; i < all.size(); i++) {
            boolean slips = slip != 0 && (i + 1) % slip == 0;
            assertEquals(slips ? SLIP : DROP, all.get(i), "denied query " + (i + 1));
        }
        // Counted apart for each client; never over TCP.
        assertEquals(slip == 1 ? SLIP : DROP, limiter.check(other, UDP));
        assertEquals(times(6, REFUSE), queries(limiter, client, TCP, 6));
    }

    @Test
    void whenTheTableIsFullTheLeastRecentlySeenClientMakesRoom() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(1, 1, ofSeconds(2), ofSeconds(60), 0, 32, 64, 3));
        assertEquals(ADMIT, udp(limiter, "10.0.0.1"));
        assertEquals(ADMIT, udp(limiter, "10.0.0.2"));
        assertEquals(ADMIT, udp(limiter, "10.0.0.3"));
        assertEquals(DROP, udp(limiter, "10.0.0.1")); // seen again: .2 is now the least recent
        assertEquals(ADMIT, udp(limiter, "10.0.0.4"));
        assertEquals(3, limiter.trackedClients());
        assertEquals(ADMIT, udp(limiter, "10.0.0.2"), "forgotten, so a full bucket; .3 makes room");
        assertEquals(DROP, udp(limiter, "10.0.0.1"), "remembered");
        assertEquals(ADMIT, udp(limiter, "10.0.0.3"), "forgotten; .4 makes room");
        assertEquals(DROP, udp(limiter, "10.0.0.2"));
        assertEquals(3, limiter.trackedClients());
    }

    @Test
    void aFloodOfSourcesStaysWithinTheBound() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(1, 1, ofSeconds(2), ofSeconds(60), 0, 32, 64, 1000));
        for (int i = 0; i < 100_000; i++) {
            limiter.checkIpv4(0x0A000000 + i, UDP);
            assertTrue(limiter.trackedClients() <= 1000);
        }
        assertEquals(1000, limiter.trackedClients());
        // The last thousand are those remembered.
        assertEquals(DROP, limiter.checkIpv4(0x0A000000 + 99_000, UDP));
        assertEquals(ADMIT, limiter.checkIpv4(0x0A000000 + 98_999, UDP));
    }

    @Test
    void aBlockedClientThatMakesRoomIsNoLongerCountedBlocked() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(1, 1, ZERO, ofSeconds(60), 0, 32, 64, 1));
        assertEquals(List.of(ADMIT, DROP), queries(limiter, ip("10.0.0.1"), UDP, 2));
        assertEquals(1, limiter.blockedClients());
        assertEquals(ADMIT, udp(limiter, "10.0.0.2"));
        assertEquals(0, limiter.blockedClients());
        assertEquals(1, limiter.trackedClients());
        clock.advance(ofSeconds(61)); // the old block's end comes and goes harmlessly
        assertEquals(List.of(ADMIT, DROP), queries(limiter, ip("10.0.0.3"), UDP, 2));
        assertEquals(1, limiter.blockedClients());
    }

    @Test
    void clientsWhoseBucketWouldBeFullAgainAreForgottenButNotBlockedOnes() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(10, 5, ZERO, ofSeconds(60), 0, 32, 64, 100));
        udp(limiter, "10.0.0.1");
        udp(limiter, "10.0.0.2");
        assertEquals(times(5, ADMIT), queries(limiter, ip("10.0.0.3"), UDP, 5));
        assertEquals(DROP, udp(limiter, "10.0.0.3")); // blocked
        udp(limiter, "10.0.0.4");
        assertEquals(4, limiter.trackedClients());
        clock.advanceMillis(499);
        udp(limiter, "10.0.0.5");
        assertEquals(5, limiter.trackedClients(), "not yet: half a second fills 5 tokens at 10 q/s");
        clock.advanceMillis(1);
        udp(limiter, "10.0.0.5");
        assertEquals(3, limiter.trackedClients(), ".1 and .2 forgotten");
        udp(limiter, "10.0.0.5");
        assertEquals(3, limiter.trackedClients(), ".3 is blocked: it stays, and so does every client after it");
        assertEquals(1, limiter.blockedClients());
    }

    @Test
    void settingsOutOfRangeAreRefusedByName() {
        record Case(String message, Runnable settings) {}
        Duration s = ofSeconds(1);
        for (Case c : List.of(
                new Case("qps must be above 0, was 0.0", () -> new RateLimiter.Settings(0, 1, s, s, 0, 32, 64, 1)),
                new Case("qps must be above 0, was NaN", () -> new RateLimiter.Settings(Double.NaN, 1, s, s, 0, 32, 64, 1)),
                new Case("qps must be above 0, was Infinity",
                        () -> new RateLimiter.Settings(Double.POSITIVE_INFINITY, 1, s, s, 0, 32, 64, 1)),
                new Case("burst must be at least 1, was 0", () -> new RateLimiter.Settings(1, 0, s, s, 0, 32, 64, 1)),
                new Case("blockAfter must not be negative, was PT-1S",
                        () -> new RateLimiter.Settings(1, 1, s.negated(), s, 0, 32, 64, 1)),
                new Case("blockTime must not be negative, was PT-1S",
                        () -> new RateLimiter.Settings(1, 1, s, s.negated(), 0, 32, 64, 1)),
                new Case("slip must not be negative, was -1", () -> new RateLimiter.Settings(1, 1, s, s, -1, 32, 64, 1)),
                new Case("ipv4Prefix must be 1 to 32, was 0", () -> new RateLimiter.Settings(1, 1, s, s, 0, 0, 64, 1)),
                new Case("ipv4Prefix must be 1 to 32, was 33", () -> new RateLimiter.Settings(1, 1, s, s, 0, 33, 64, 1)),
                new Case("ipv6Prefix must be 1 to 64, was 65", () -> new RateLimiter.Settings(1, 1, s, s, 0, 32, 65, 1)),
                new Case("ipv6Prefix must be 1 to 64, was 0", () -> new RateLimiter.Settings(1, 1, s, s, 0, 32, 0, 1)),
                new Case("maxClients must be at least 1, was 0", () -> new RateLimiter.Settings(1, 1, s, s, 0, 32, 64, 0)))) {
            assertEquals(c.message(), assertThrows(IllegalArgumentException.class, c.settings()::run).getMessage());
        }
        // The limits themselves are fine, and a block of centuries is "forever", not an overflow.
        new RateLimiter.Settings(0.001, 1, ZERO, ZERO, 0, 1, 1, 1);
        RateLimiter forever = limiter(new RateLimiter.Settings(1, 1, ZERO, Duration.ofDays(1_000_000), 0, 32, 64, 1));
        assertEquals(List.of(ADMIT, DROP), queries(forever, ip("10.0.0.1"), UDP, 2));
        clock.advance(Duration.ofDays(365 * 200));
        assertEquals(DROP, udp(forever, "10.0.0.1"));
    }

    @Test
    void theGaugesReportTrackedAndBlockedClients() {
        RateLimiter limiter = limiter(new RateLimiter.Settings(1, 1, ZERO, ofSeconds(60), 0, 32, 64, 100));
        queries(limiter, ip("10.0.0.1"), UDP, 2);
        udp(limiter, "10.0.0.2");
        assertEquals(2, registry.get("dotproxy.guard.clients").gauge().value());
        assertEquals(1, registry.get("dotproxy.guard.clients.blocked").gauge().value());
    }
}
