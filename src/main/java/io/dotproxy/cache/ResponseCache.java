package io.dotproxy.cache;

import io.dotproxy.cache.CacheMetrics.Storing;
import io.dotproxy.dns.ClientSubnet;
import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Rcode;
import io.dotproxy.dns.Ttls;
import io.dotproxy.dns.WireFormatException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
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
 * An answer stays servable for max-stale past its lifetime (RFC 8767), then goes: when it is
 * next looked up, or when the {@link AnswerLog}'s CLOCK hand passes it.
 *
 * <p>One cache serves every lane (event loop). It is split into segments by key, each a log and
 * a doorkeeper of its own under its own lock, held for a lookup with the copy of its answer, or
 * for an insertion (parsing happens outside): with one lane there is one segment and its lock is
 * never contended; with more, lanes rarely meet on one. Each segment holds its share of the size
 * bound (and at most {@link AnswerLog#MAX_BYTES}: larger bounds get more segments).
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

    /** Refreshes an answer ahead of its expiry: told by a hit that should (see {@link #fresh}). */
    @FunctionalInterface
    interface Prefetcher {
        void prefetch(long key, ByteBuf query, Message parsed, ByteBufAllocator alloc);
    }

    /** A share of the cache: its answers and doorkeeper, guarded by the segment's own lock. */
    private static final class Segment {
        final AnswerLog answers;
        final Doorkeeper doorkeeper;

        Segment(long budget, int doorkeeperWindow, int doorkeeperBitsLog2, Runnable evicted) {
            answers = new AnswerLog(budget, evicted);
            doorkeeper = new Doorkeeper(doorkeeperWindow, doorkeeperBitsLog2);
        }
    }

    /** The lifetimes settings, in the units the cache works in; replaced whole by a reload. */
    private record Lifetimes(long minTtl, long maxTtl, long maxNegativeTtl, long maxStaleNanos, int prefetchAfter) {
        static Lifetimes of(Settings settings) {
            return new Lifetimes(settings.minTtl().toSeconds(), settings.maxTtl().toSeconds(),
                    settings.maxNegativeTtl().toSeconds(), settings.maxStale().toNanos(), settings.prefetchAfter());
        }
    }

    private final Segment[] segments;
    private final int segmentShift;
    private volatile Lifetimes lifetimes;
    private final LongSupplier clock;
    private final CacheMetrics metrics;

    /**
     * A cache for one lane.
     *
     * @param clock {@link System#nanoTime()}, or a test's clock: the cache reads time only from it
     */
    public ResponseCache(Settings settings, LongSupplier clock, CacheMetrics metrics) {
        this(settings, clock, metrics, 1);
    }

    /**
     * A cache shared by {@code lanes} event loops: four segments a lane (a power of two), or one
     * for a single lane.
     */
    public ResponseCache(Settings settings, LongSupplier clock, CacheMetrics metrics, int lanes) {
        this.clock = clock;
        this.metrics = metrics;
        int count = segmentsFor(lanes, settings.maxBytes());
        this.segments = new Segment[count];
        this.segmentShift = 64 - Integer.numberOfTrailingZeros(count);
        for (int i = 0; i < count; i++) {
            segments[i] = new Segment(settings.maxBytes() / count, Doorkeeper.WINDOW / count,
                    Doorkeeper.BITS_LOG2 - Integer.numberOfTrailingZeros(count), metrics::evicted);
        }
        this.lifetimes = Lifetimes.of(settings);
        metrics.watch(this);
    }

    /** A segment holds at least this much of the size bound, so that large answers still fit one. */
    private static final long MIN_SEGMENT_BYTES = 256 << 10;

    /**
     * Segments for {@code lanes} lanes: four a lane (a power of two, so that lanes rarely meet on a
     * lock), no more than the size bound gives {@link #MIN_SEGMENT_BYTES} each, one for one lane;
     * and always enough that none holds more than {@link AnswerLog#MAX_BYTES}.
     */
    static int segmentsFor(int lanes, long maxBytes) {
        int wanted = lanes <= 1 ? 1 : Integer.highestOneBit(lanes * 4 - 1) << 1;
        long room = Math.max(1, maxBytes / MIN_SEGMENT_BYTES);
        int forLanes = (int) Math.min(wanted, Long.highestOneBit(Math.min(room, 1 << 16)));
        long needed = Math.max(1, (maxBytes + AnswerLog.MAX_BYTES - 1) / AnswerLog.MAX_BYTES);
        return Math.max(forLanes, (int) Long.highestOneBit(2 * needed - 1)); // the power of two at or above
    }

    /** The segment of {@code key}: its top bits (the table's slot comes from the low ones). */
    private Segment segment(long key) {
        // One segment has no index bits, and Java shifts a long by 64 as by 0: hence the test.
        return segments.length == 1 ? segments[0] : segments[(int) (key >>> segmentShift)];
    }

    /**
     * Keeps answers by {@code settings} from now on (a reload). The answers stay, since no setting
     * changes what a key means, with the lifetimes they were given; a smaller size bound evicts
     * down to it at once (each segment's answers moved into a smaller store, under its lock). May
     * be called from any thread. (The segments are as many as at start: a
     * bound raised past {@link AnswerLog#MAX_BYTES} a segment stops there until a restart.)
     */
    public void reconfigure(Settings settings) {
        lifetimes = Lifetimes.of(settings);
        long now = now();
        for (Segment segment : segments) {
            synchronized (segment) {
                segment.answers.resize(settings.maxBytes() / segments.length, now);
            }
        }
    }

    /** The time now, from the cache's clock. */
    long now() {
        return clock.getAsLong();
    }

    /**
     * A copy of the fresh answer to {@code query} (whose key is {@code key}, {@link Question#key}),
     * with the client's ID and spelling and its TTLs aged; null on a miss. A hit that should
     * refresh the answer ahead of its expiry tells {@code prefetcher}, once the lock is let go.
     */
    ByteBuf fresh(long key, ByteBuf query, Message parsed, long now, ByteBufAllocator alloc, Prefetcher prefetcher) {
        Segment segment = segment(key);
        ByteBuf answer;
        boolean refresh;
        // The copy is made under the lock: once it is let go, another lane may sweep the record away.
        synchronized (segment) {
            AnswerLog log = segment.answers;
            int position = answering(log, key, query, parsed, now);
            if (position < 0) {
                return null;
            }
            byte[] chunk = log.chunk(position);
            int at = log.offset(position);
            if (!AnswerRecord.isFresh(chunk, at, now)) {
                return null;
            }
            refresh = AnswerRecord.hitWantsRefresh(chunk, at, now, lifetimes.prefetchAfter());
            answer = AnswerRecord.fresh(chunk, at, alloc, query, parsed, now);
        }
        if (refresh) {
            prefetcher.prefetch(key, query, parsed, alloc);
        }
        return answer;
    }

    /**
     * A copy of the answer to {@code query} past its lifetime but still servable, every TTL {@value
     * AnswerRecord#STALE_TTL} s (RFC 8767); null when there is none, or when what is kept is a
     * SERVFAIL, which is never served stale.
     */
    ByteBuf stale(long key, ByteBuf query, Message parsed, long now, ByteBufAllocator alloc) {
        Segment segment = segment(key);
        synchronized (segment) {
            AnswerLog log = segment.answers;
            int position = answering(log, key, query, parsed, now);
            if (position < 0 || AnswerRecord.isServfail(log.chunk(position), log.offset(position))) {
                return null;
            }
            return AnswerRecord.stale(log.chunk(position), log.offset(position), alloc, query, parsed);
        }
    }

    /** Whether an answer to {@code query} is kept that can still be served at {@code now}, fresh or stale. */
    boolean holds(long key, ByteBuf query, Message parsed, long now) {
        Segment segment = segment(key);
        synchronized (segment) {
            return answering(segment.answers, key, query, parsed, now) >= 0;
        }
    }

    /**
     * The position in {@code log} of a servable answer to {@code query}, or -1: a key's record whose
     * question or bits differ (a hash collision) is a miss. Call under the log's segment lock.
     */
    private static int answering(AnswerLog log, long key, ByteBuf query, Message parsed, long now) {
        int position = log.find(key, now);
        return position >= 0 && AnswerRecord.answers(log.chunk(position), log.offset(position), query, parsed)
                ? position : -1;
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
        Lifetimes limits = lifetimes;
        int rcode = view.rcode();
        boolean hasAnswers = Header.ancount(answer, view.start()) > 0;
        long now = now();
        Storing kind;
        long lifetime;
        if (rcode == Rcode.NOERROR && hasAnswers) {
            kind = Storing.POSITIVE;
            lifetime = clamp(scan.smallest(), limits);
        } else if (rcode == Rcode.NXDOMAIN || rcode == Rcode.NOERROR) {
            if (scan.negative() < 0) {
                return Storing.NO_SOA;
            }
            kind = Storing.NEGATIVE;
            lifetime = Math.min(scan.negative(), limits.maxNegativeTtl());
        } else if (rcode == Rcode.SERVFAIL) {
            if (holds(key, query, parsed, now)) {
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
        Segment segment = segment(key);
        synchronized (segment) {
            if (segment.answers.isFull() && !segment.answers.contains(key) && !segment.doorkeeper.seenBefore(key)) {
                return Storing.ONE_OFF;
            }
        }
        boolean positive = kind == Storing.POSITIVE;
        // A SERVFAIL holds no data to serve stale (RFC 8767 serves expired answers): it goes at its lifetime.
        long staleNanos = kind == Storing.SERVFAIL ? 0 : limits.maxStaleNanos();
        long freshUntil = now + TimeUnit.SECONDS.toNanos(lifetime);
        AnswerRecord.Draft draft = new AnswerRecord.Draft(key, Question.bits(parsed), question, answer, view.start(),
                view.length(), scan.offsets(), positive ? limits.minTtl() : 0, positive ? limits.maxTtl() : lifetime,
                now, freshUntil, freshUntil + staleNanos, kind == Storing.NEGATIVE);
        synchronized (segment) {
            return segment.answers.put(draft, now) ? kind : Storing.TOO_LARGE;
        }
    }

    private static long clamp(long ttl, Lifetimes limits) {
        return Math.max(limits.minTtl(), Math.min(limits.maxTtl(), ttl));
    }

    /** Answers held, stale ones and expired ones not yet found included. */
    public long entries() {
        long sum = 0;
        for (Segment segment : segments) {
            sum += segment.answers.size();
        }
        return sum;
    }

    /** Octets the cache holds, as the size bound counts them: its logs' chunks and index slots. */
    public long bytes() {
        long sum = 0;
        for (Segment segment : segments) {
            sum += segment.answers.bytes();
        }
        return sum;
    }

    /** Removes every entry. May be called from any thread. */
    public void clear() {
        for (Segment segment : segments) {
            synchronized (segment) {
                segment.answers.clear();
            }
        }
    }
}
