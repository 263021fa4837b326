package io.dotproxy.cache;

import io.dotproxy.cache.CacheMetrics.Storing;
import io.dotproxy.dns.ClientSubnet;
import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Rcode;
import io.dotproxy.dns.Ttls;
import io.dotproxy.dns.WireFormatException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Upstream answers kept as wire bytes for their TTL, bounded by the octets they hold.
 *
 * <p>What is kept, and for how long (the rules of CoreDNS's cache and unbound, after RFC 1035,
 * RFC 2308 and RFC 8767):
 * <ul>
 *   <li>an answer with records: its smallest TTL, each TTL clamped to [min-ttl, max-ttl];
 *   <li>NXDOMAIN and NODATA: min(SOA TTL, SOA MINIMUM), at most max-negative-ttl (RFC 2308 §5);
 *       without an SOA record, not at all;
 *   <li>SERVFAIL: {@value #SERVFAIL_SECONDS} seconds (RFC 2308 §7.1 allows up to five minutes), and
 *       never in place of an answer that can still be served stale, and never served stale itself;
 *   <li>never: a truncated answer, one whose question is not the query's, one with an ECS option,
 *       any other rcode, a TTL of zero.
 * </ul>
 * Once the cache is full, a question is kept only when it was asked lately before (the {@link
 * Doorkeeper}): names asked once pass through without pushing out the others.
 * An entry stays servable for max-stale past its lifetime (RFC 8767), then goes: when it is
 * next looked up, or when the {@link AnswerTable}'s CLOCK hand passes it.
 */
public final class ResponseCache {
    /** How long a SERVFAIL is kept: long enough to spare a failing upstream a storm, short enough to recover. */
    static final int SERVFAIL_SECONDS = 5;

    /**
     * The cache's settings.
     *
     * @param enabled whether queries are answered from a cache at all
     * @param maxBytes octets the entries may hold at most (their wire bytes and bookkeeping)
     * @param minTtl floor of every positive answer's TTLs
     * @param maxTtl cap of every positive answer's TTLs
     * @param maxNegativeTtl cap of a negative answer's lifetime
     * @param maxStale how long past its lifetime an answer may still be served stale; zero: never
     * @param staleAnswerTimeout how long a query with a stale answer at hand waits for the upstreams
     *     before it gets the stale answer (RFC 8767 §5: the client response timer)
     * @param prefetchAfter hits after which an entry is refreshed ahead of its expiry; zero: never
     */
    public record Settings(boolean enabled, long maxBytes, Duration minTtl, Duration maxTtl, Duration maxNegativeTtl,
                           Duration maxStale, Duration staleAnswerTimeout, int prefetchAfter) {}

    private final AnswerTable entries;
    private final Doorkeeper doorkeeper = new Doorkeeper();
    // Replaced by reconfigure(), on the event loop.
    private long minTtl;
    private long maxTtl;
    private long maxNegativeTtl;
    private long maxStaleNanos;
    private final LongSupplier clock;
    private final CacheMetrics metrics;

    /**
     * @param clock {@link System#nanoTime()}, or a test's clock: the cache reads time only from it
     */
    public ResponseCache(Settings settings, LongSupplier clock, CacheMetrics metrics) {
        this.clock = clock;
        this.metrics = metrics;
        this.entries = new AnswerTable(settings.maxBytes(), metrics::evicted);
        setLifetimes(settings);
        metrics.watch(this);
    }

    /**
     * Keeps answers by {@code settings} from now on (a reload). The entries stay, since no setting
     * changes what a key means, with the lifetimes they were given; a smaller size bound evicts
     * down to it at once. Call on the event loop.
     */
    public void reconfigure(Settings settings) {
        setLifetimes(settings);
        entries.resize(settings.maxBytes(), now());
    }

    private void setLifetimes(Settings settings) {
        minTtl = settings.minTtl().toSeconds();
        maxTtl = settings.maxTtl().toSeconds();
        maxNegativeTtl = settings.maxNegativeTtl().toSeconds();
        maxStaleNanos = settings.maxStale().toNanos();
    }

    /** The time now, from the cache's clock. */
    long now() {
        return clock.getAsLong();
    }

    /**
     * The entry that answers {@code query}, fresh or still servable stale, or null. {@code key}
     * is {@link Question#key} of the query.
     */
    CachedAnswer find(long key, ByteBuf query, Message parsed, long now) {
        CachedAnswer entry = entries.get(key, now);
        return entry != null && entry.answers(query, parsed) ? entry : null;
    }

    /**
     * Offers an upstream's answer to {@code query} (whose view is {@code parsed} and key {@code key});
     * the cache copies what it keeps and changes neither buffer.
     */
    void store(long key, ByteBuf query, Message parsed, ByteBuf answer) {
        metrics.stored(storeAnswer(key, query, parsed, answer));
    }

    private Storing storeAnswer(long key, ByteBuf query, Message parsed, ByteBuf answer) {
        Message view;
        Ttls.Scan scan;
        byte[] question = Question.lowerCase(query, parsed);
        try {
            view = Message.parse(answer);
            if (view.questionCount() != 1 || !Question.matches(question, answer, view)) {
                return Storing.MISMATCH;
            }
            if ((view.flags() & Header.FLAG_TC) != 0) {
                return Storing.TRUNCATED;
            }
            if (ClientSubnet.present(answer, view)) {
                return Storing.CLIENT_SUBNET;
            }
            scan = Ttls.scan(answer, view);
        } catch (WireFormatException e) {
            return Storing.MISMATCH;
        }
        int rcode = view.rcode();
        boolean hasAnswers = Header.ancount(answer, view.start()) > 0;
        long now = now();
        Storing kind;
        long lifetime;
        if (rcode == Rcode.NOERROR && hasAnswers) {
            kind = Storing.POSITIVE;
            lifetime = clamp(scan.smallest());
        } else if (rcode == Rcode.NXDOMAIN || rcode == Rcode.NOERROR) {
            if (scan.negative() < 0) {
                return Storing.NO_SOA;
            }
            kind = Storing.NEGATIVE;
            lifetime = Math.min(scan.negative(), maxNegativeTtl);
        } else if (rcode == Rcode.SERVFAIL) {
            if (find(key, query, parsed, now) != null) {
                return Storing.KEPT_OLDER;
            }
            kind = Storing.SERVFAIL;
            lifetime = SERVFAIL_SECONDS;
        } else {
            return Storing.RCODE;
        }
        if (lifetime <= 0) {
            return Storing.ZERO_TTL;
        }
        // Turned away before anything is copied: under a flood of new names this is the common case.
        int weight = CachedAnswer.weight(view.length(), scan.offsets().length);
        if (entries.wouldEvictFor(key, weight) && !doorkeeper.seenBefore(key)) {
            return Storing.ONE_OFF;
        }
        byte[] bytes = CachedAnswer.bytesFor(view.length(), scan.offsets().length);
        ByteBuf stored = Unpooled.wrappedBuffer(bytes, 0, view.length()).setBytes(0, answer, view.start(), view.length());
        for (int offset : scan.offsets()) {
            long ttl = Ttls.read(stored, offset);
            stored.setInt(offset, (int) (kind == Storing.POSITIVE ? clamp(ttl) : Math.min(ttl, lifetime)));
        }
        // A SERVFAIL holds no data to serve stale (RFC 8767 serves expired answers): it goes at its lifetime.
        long staleNanos = kind == Storing.SERVFAIL ? 0 : maxStaleNanos;
        entries.put(key, new CachedAnswer(question, Question.bits(parsed), bytes, view.length(), scan.offsets(), now,
                lifetime, staleNanos, kind == Storing.NEGATIVE), now);
        return kind;
    }

    private long clamp(long ttl) {
        return Math.max(minTtl, Math.min(maxTtl, ttl));
    }

    /** Entries held, stale ones and expired ones not yet found included. */
    public long entries() {
        return entries.size();
    }

    /** Octets the entries hold, as the size bound counts them. */
    public long bytes() {
        return entries.bytes();
    }

    /** Removes every entry. */
    public void clear() {
        entries.clear();
    }
}
