package io.dotproxy.guard;

import io.dotproxy.guard.Admission.Verdict;
import io.dotproxy.guard.GuardMetrics.Denial;
import io.dotproxy.net.Transport;
import java.net.InetAddress;
import java.time.Duration;
import java.util.Objects;
import java.util.function.LongSupplier;
import org.jboss.logging.Logger;

/**
 * Per-client rate limits: a token bucket for each client prefix, and a block for a client that
 * stays over its limit.
 *
 * <p>A client is its address masked to a prefix ({@code /32} and {@code /64} by default: one IPv4
 * host, one IPv6 host or LAN, as an ISP hands out a /64 or more to each customer, RFC 6177), so that
 * a host cannot escape its limit by hopping addresses inside its own prefix. Its bucket holds up to
 * {@code burst} tokens and gains {@code qps} a second; each query takes one. A client with no
 * token is over its limit. Over UDP its queries are dropped, since an answer to a spoofed source
 * would be a reflection, except every {@code slip}-th, which gets an empty TC=1 answer so that a
 * real client retries over TCP (the "slip" of BIND's response rate limiting); over TCP, whose
 * handshake proves the address, they are refused.
 *
 * <p>If it is still over its limit {@code blockAfter} after it first ran out, it is blocked for
 * {@code blockTime}: every query is denied as above, and one line at WARN names it; then it starts
 * again with a full bucket. "Still over" means that no token came back between two of its queries
 * (none was {@code 1/qps} or more after the one before): a client that sends faster than
 * {@code qps} is still over its limit, although the bucket lets one query in each {@code 1/qps};
 * one that slows down to {@code qps} or pauses starts over.
 *
 * <p>At most {@code maxClients} are tracked: the least recently seen one makes room for a new one,
 * so a flood of spoofed sources costs bounded memory. A client whose bucket would be full again,
 * and which is not blocked, is no different from one never seen, and is forgotten.
 *
 * <p>One limiter serves every lane (event loop), so that a client that spreads its queries over
 * several source ports, and so over several lanes' sockets, still gets one limit: a check holds
 * the limiter's lock for a table lookup and a little arithmetic, never contended with one lane.
 * {@link #trackedClients()} and {@link #blockedClients()} may be read from another thread, for
 * gauges, and may be a little stale.
 */
public final class RateLimiter {
    /** The IPv4 prefix length that makes each host a client. */
    public static final int DEFAULT_IPV4_PREFIX = 32;
    /** The IPv6 prefix length that makes each /64 (one host or one LAN) a client. */
    public static final int DEFAULT_IPV6_PREFIX = 64;
    /** How many clients are tracked at most by default. */
    public static final int DEFAULT_MAX_CLIENTS = 100_000;

    /**
     * The limit of each client.
     *
     * @param qps queries a second each client may keep up (tokens it gains a second), above 0
     * @param burst queries a client may send at once (its bucket's capacity), at least 1
     * @param blockAfter how long a client may stay over its limit before it is blocked (0: at once)
     * @param blockTime how long a block lasts (0: never block, only limit)
     * @param slip over UDP, every {@code slip}-th denied query of a client gets an empty TC=1
     *     answer instead of none (0: none does, 1: every one does)
     * @param ipv4Prefix the IPv4 prefix length that makes a client, 1 to 32
     * @param ipv6Prefix the IPv6 prefix length that makes a client, 1 to 64
     * @param maxClients how many clients are tracked at most, at least 1
     */
    public record Settings(double qps, int burst, Duration blockAfter, Duration blockTime, int slip,
            int ipv4Prefix, int ipv6Prefix, int maxClients) {
        /** @throws IllegalArgumentException naming the first setting out of range */
        public Settings {
            Objects.requireNonNull(blockAfter, "blockAfter");
            Objects.requireNonNull(blockTime, "blockTime");
            require(qps > 0 && Double.isFinite(qps), "qps must be above 0, was " + qps);
            require(burst >= 1, "burst must be at least 1, was " + burst);
            require(!blockAfter.isNegative(), "blockAfter must not be negative, was " + blockAfter);
            require(!blockTime.isNegative(), "blockTime must not be negative, was " + blockTime);
            require(slip >= 0, "slip must not be negative, was " + slip);
            require(ipv4Prefix >= 1 && ipv4Prefix <= 32, "ipv4Prefix must be 1 to 32, was " + ipv4Prefix);
            require(ipv6Prefix >= 1 && ipv6Prefix <= 64, "ipv6Prefix must be 1 to 64, was " + ipv6Prefix);
            require(maxClients >= 1, "maxClients must be at least 1, was " + maxClients);
        }

        private static void require(boolean ok, String message) {
            if (!ok) {
                throw new IllegalArgumentException(message);
            }
        }
    }

    private static final Logger LOG = Logger.getLogger(RateLimiter.class);

    private final Settings settings;
    private final GuardMetrics metrics;
    private final LongSupplier nanoClock;
    private final ClientTable table;
    // The bucket in nanotokens (a token is 10^9 of them): a client gains qps of them each
    // nanosecond, so the refill is one multiplication, exact for whole rates and times (a 100 ms
    // pause at 10 q/s gives back 1.0 token, not 0.99999...), and no division.
    private static final double TOKEN = 1e9;
    private final double capacity;
    private final double qps;
    private final long blockAfterNanos;
    private final long blockNanos;
    private final long refillNanos;
    private final int ipv4Mask;
    private final long ipv6Mask;
    // The blocked clients, oldest block first: every block lasts as long, so this is also the
    // order in which they end, and ending the due ones costs one look per query.
    private Client firstBlocked;
    private Client lastBlocked;
    private int blockedCount;

    /**
     * A limiter that counts what it denies and the blocks it starts in {@code metrics}, and reads
     * the time from {@code nanoClock} ({@link System#nanoTime} but in tests).
     */
    RateLimiter(Settings settings, GuardMetrics metrics, LongSupplier nanoClock) {
        this.settings = Objects.requireNonNull(settings, "settings");
        this.metrics = Objects.requireNonNull(metrics, "metrics");
        this.nanoClock = Objects.requireNonNull(nanoClock, "nanoClock");
        table = new ClientTable(settings.maxClients());
        capacity = settings.burst() * TOKEN;
        qps = settings.qps();
        blockAfterNanos = nanos(settings.blockAfter());
        blockNanos = nanos(settings.blockTime());
        // From empty to full; a double too large for a long becomes Long.MAX_VALUE: never.
        refillNanos = (long) Math.ceil(capacity / qps);
        ipv4Mask = AddressBits.mask32(settings.ipv4Prefix());
        ipv6Mask = AddressBits.mask64(settings.ipv6Prefix());
        metrics.watch(this);
    }

    private static long nanos(Duration duration) {
        try {
            return duration.toNanos();
        } catch (ArithmeticException tooLong) {
            return Long.MAX_VALUE; // over 292 years: forever
        }
    }

    /** The verdict on one query from {@code client} over {@code transport}; counts a denial. */
    public Verdict check(InetAddress client, Transport transport) {
        byte[] octets = client.getAddress();
        if (octets.length == 4) {
            return checkIpv4(AddressBits.ipv4(octets), transport);
        }
        long high = AddressBits.high(octets);
        return AddressBits.isMapped(high, AddressBits.low(octets))
                ? checkIpv4(AddressBits.ipv4(octets), transport)
                : checkIpv6(high, transport);
    }

    /** {@link #check} for an IPv4 client (or an IPv4-mapped one). */
    Verdict checkIpv4(int address, Transport transport) {
        return check(address & ipv4Mask, false, transport);
    }

    /** {@link #check} for an IPv6 client, of which only the high 64 bits count. */
    Verdict checkIpv6(long high, Transport transport) {
        return check(high & ipv6Mask, true, transport);
    }

    /** How many client prefixes are tracked. */
    public int trackedClients() {
        return table.size();
    }

    /** How many client prefixes are blocked now (as of the last query). */
    public int blockedClients() {
        return blockedCount;
    }

    private synchronized Verdict check(long key, boolean ipv6, Transport transport) {
        long now = nanoClock.getAsLong();
        endDueBlocks(now);
        forgetIdle(now);
        Client client = table.find(key, ipv6);
        if (client == null) {
            if (table.isFull()) {
                forget(table.oldest());
            }
            client = table.add(key, ipv6);
            client.reset(capacity, now);
        }
        if (client.blocked) {
            return deny(client, transport, Denial.BLOCKED);
        }
        double gained = (now - client.refilledAt) * qps;
        if (gained >= TOKEN) {
            // A token came back between two of its queries: it slowed down, its time over the
            // limit starts again. A flood keeps getting a token now and then, but never this.
            client.over = false;
        }
        client.nanoTokens = Math.min(capacity, client.nanoTokens + gained);
        client.refilledAt = now;
        if (client.nanoTokens >= TOKEN) {
            client.nanoTokens -= TOKEN;
            return Verdict.ADMIT;
        }
        if (!client.over) {
            client.over = true;
            client.overSince = now;
        }
        if (blockNanos > 0 && now - client.overSince >= blockAfterNanos) {
            block(client, now);
            return deny(client, transport, Denial.BLOCKED);
        }
        return deny(client, transport, Denial.RATE_LIMITED);
    }

    private Verdict deny(Client client, Transport transport, Denial denial) {
        metrics.denied(transport, denial);
        if (transport == Transport.TCP) {
            return Verdict.REFUSE;
        }
        if (settings.slip() > 0 && ++client.slipCount >= settings.slip()) {
            client.slipCount = 0;
            return Verdict.SLIP;
        }
        return Verdict.DROP;
    }

    private void block(Client client, long now) {
        client.blocked = true;
        client.blockedAt = now;
        client.previousBlocked = lastBlocked;
        client.nextBlocked = null;
        if (lastBlocked != null) {
            lastBlocked.nextBlocked = client;
        } else {
            firstBlocked = client;
        }
        lastBlocked = client;
        blockedCount++;
        metrics.blockStarted();
        LOG.warnf("Client %s blocked for %s: over %s q/s for %s", prefix(client), text(settings.blockTime()),
                text(settings.qps()), text(settings.blockAfter()));
    }

    private void unblock(Client client) {
        if (client.previousBlocked != null) {
            client.previousBlocked.nextBlocked = client.nextBlocked;
        } else {
            firstBlocked = client.nextBlocked;
        }
        if (client.nextBlocked != null) {
            client.nextBlocked.previousBlocked = client.previousBlocked;
        } else {
            lastBlocked = client.previousBlocked;
        }
        client.nextBlocked = null;
        client.previousBlocked = null;
        client.blocked = false;
        blockedCount--;
    }

    private void endDueBlocks(long now) {
        while (firstBlocked != null && now - firstBlocked.blockedAt >= blockNanos) {
            Client client = firstBlocked;
            unblock(client);
            client.reset(capacity, now);
            if (LOG.isDebugEnabled()) {
                LOG.debugf("Client %s no longer blocked", prefix(client));
            }
        }
    }

    private void forgetIdle(long now) {
        // Two at most: a query adds at most one client, so the table still shrinks to the
        // clients of the last few seconds, at a bounded cost per query.
        for (int i = 0; i < 2; i++) {
            Client oldest = table.oldest();
            if (oldest == null || oldest.blocked || now - oldest.refilledAt < refillNanos) {
                return;
            }
            table.remove(oldest);
        }
    }

    private void forget(Client client) {
        if (client.blocked) {
            unblock(client);
        }
        table.remove(client);
    }

    private String prefix(Client client) {
        return client.ipv6
                ? AddressBits.ipv6Text(client.key, 0) + "/" + settings.ipv6Prefix()
                : AddressBits.ipv4Text((int) client.key) + "/" + settings.ipv4Prefix();
    }

    private static String text(Duration duration) {
        return duration.toMillis() % 1000 == 0 ? duration.toSeconds() + "s" : duration.toMillis() + "ms";
    }

    private static String text(double qps) {
        return qps == Math.rint(qps) && qps < 1e15 ? Long.toString((long) qps) : Double.toString(qps);
    }
}
