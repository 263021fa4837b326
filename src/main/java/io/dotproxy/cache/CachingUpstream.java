package io.dotproxy.cache;

import io.dotproxy.dns.ClientSubnet;
import io.dotproxy.dns.ExtendedError;
import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Names;
import io.dotproxy.dns.Rcode;
import io.dotproxy.dns.Replies;
import io.dotproxy.dns.WireFormatException;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamFailure;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * The cache in front of the upstreams: it answers fresh hits ({@link LocalAnswers}) and, as an
 * {@link Upstream} in front of the real one, handles each miss:
 * <ul>
 *   <li><b>coalescing</b>: identical questions in flight at once send one upstream query; every
 *       waiter gets the answer with its own ID, RD bit and name case, or the failure;
 *   <li><b>storing</b> the upstream's answer ({@link ResponseCache} decides what and how long);
 *   <li><b>serve-stale</b> (RFC 8767): when the upstreams fail, answer SERVFAIL, or have not
 *       answered within the stale-answer timeout, an expired answer that is still servable goes to
 *       the waiters with TTL 30 and Extended DNS Error 3 (19 for NXDOMAIN); the upstream query
 *       goes on and refreshes the entry when it answers;
 *   <li><b>prefetch</b>: a popular entry hit in the last tenth of its lifetime is refreshed in the
 *       background, so that hot names never miss.
 * </ul>
 * A query with an EDNS Client Subnet option (passed on when {@code dotproxy.ecs=pass}) bypasses the
 * cache both ways: its answer may be meant for that subnet only.
 *
 * <p>Runs on the proxy's event loop, as its upstream group does: the table of queries in flight
 * has no lock.
 */
public final class CachingUpstream implements Upstream, LocalAnswers {
    private static final Logger LOG = Logger.getLogger(CachingUpstream.class);

    private final ResponseCache cache;
    private Upstream next; // replaced by forwardTo(), on the event loop
    private final EventLoop loop;
    // Replaced by reconfigure(), on the event loop.
    private long refreshTimeoutNanos;
    private long staleAnswerTimeoutNanos;
    private boolean serveStale;
    private final CacheMetrics metrics;
    private final Map<Long, Pending> inFlight = new HashMap<>();
    private final ResponseCache.Prefetcher prefetcher = this::prefetch;

    /**
     * @param next where misses go: the upstream group
     * @param loop the event loop everything runs on (the stale-answer timers too)
     * @param refreshTimeout deadline of a background refresh: the client query deadline
     */
    public CachingUpstream(ResponseCache cache, ResponseCache.Settings settings, Upstream next, EventLoop loop,
                           Duration refreshTimeout, CacheMetrics metrics) {
        this.cache = cache;
        this.next = next;
        this.loop = loop;
        this.metrics = metrics;
        reconfigure(settings, refreshTimeout);
    }

    /**
     * From the next query on: these settings (a reload; the cache's own are {@link
     * ResponseCache#reconfigure}'s) and this deadline for background refreshes. Call on the event loop.
     */
    public void reconfigure(ResponseCache.Settings settings, Duration refreshTimeout) {
        refreshTimeoutNanos = refreshTimeout.toNanos();
        staleAnswerTimeoutNanos = settings.staleAnswerTimeout().toNanos();
        serveStale = !settings.maxStale().isZero();
    }

    /** The cache this answers from. */
    public ResponseCache cache() {
        return cache;
    }

    @Override
    public ByteBuf answer(ByteBuf query, Message parsed, ByteBufAllocator alloc) {
        if (ClientSubnet.present(query, parsed)) {
            return null;
        }
        ByteBuf answer = cache.fresh(Question.key(query, parsed), query, parsed, cache.now(), alloc, prefetcher);
        if (answer == null) {
            metrics.miss();
        } else {
            metrics.hit();
        }
        return answer;
    }

    @Override
    public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
        if (ClientSubnet.present(query, parsed)) {
            next.query(query, parsed, deadlineNanos, callback);
            return;
        }
        long key = Question.key(query, parsed);
        Pending pending = inFlight.get(key);
        if (pending != null && pending.asks(query, parsed)) {
            metrics.coalesced();
            pending.join(new Waiter(callback, query, parsed));
            return;
        }
        Pending leader = new Pending(key, query.retain(), parsed);
        leader.join(new Waiter(callback, query, parsed));
        if (pending == null) {
            inFlight.put(key, leader); // on a hash collision the first keeps the seat; this one goes alone
        }
        if (serveStale && cache.holds(key, query, parsed, cache.now())) {
            leader.staleTimer = loop.schedule(leader::staleAnswerTimeout, staleAnswerTimeoutNanos, TimeUnit.NANOSECONDS);
        }
        next.query(query, parsed, deadlineNanos, leader);
    }

    /** Refreshes an entry ahead of its expiry with a query of the cache's own, unless one is in flight. */
    private void prefetch(long key, ByteBuf query, Message parsed, ByteBufAllocator alloc) {
        if (inFlight.containsKey(key)) {
            return;
        }
        ByteBuf copy = alloc.directBuffer(parsed.length()).writeBytes(query, parsed.start(), parsed.length());
        Message view;
        try {
            view = Message.parse(copy);
        } catch (WireFormatException e) {
            copy.release(); // cannot happen: the query parsed before
            return;
        }
        Pending refresh = new Pending(key, copy, view);
        inFlight.put(key, refresh);
        metrics.prefetch();
        next.query(copy, view, System.nanoTime() + refreshTimeoutNanos, refresh);
    }

    /**
     * From the next miss on, misses go to {@code upstream} (a reload changed the upstreams); the
     * queries in flight finish where they went. Call on the event loop.
     */
    public void forwardTo(Upstream upstream) {
        next = upstream;
    }

    @Override
    public Future<Void> connectAhead() {
        return next.connectAhead();
    }

    @Override
    public String name() {
        return next.name();
    }

    @Override
    public void close() {
        next.close();
    }

    /** Queries of distinct questions in flight upstream now. */
    int inFlight() {
        return inFlight.size();
    }

    /** A client query waiting for an upstream answer; its buffer is its caller's until the callback. */
    private record Waiter(QueryCallback callback, ByteBuf query, Message parsed) {}

    /**
     * One question in flight upstream, and everyone waiting for its answer: the query that asked
     * first (whose buffer it holds a reference to until the upstream calls back, since the client
     * may be answered stale before that), the queries that joined it, or no one for a refresh.
     */
    private final class Pending implements QueryCallback {
        private final long key;
        private final ByteBuf query;
        private final Message parsed;
        private final List<Waiter> waiters = new ArrayList<>(2);
        private ScheduledFuture<?> staleTimer;
        private boolean servedStale;

        Pending(long key, ByteBuf query, Message parsed) {
            this.key = key;
            this.query = query;
            this.parsed = parsed;
        }

        boolean asks(ByteBuf other, Message otherParsed) {
            return Question.bits(otherParsed) == Question.bits(parsed)
                    && Message.sameQuestion(query, parsed.start(), parsed.start() + parsed.length(),
                            other, otherParsed.start(), otherParsed.start() + otherParsed.length());
        }

        void join(Waiter waiter) {
            if (servedStale && serveStale(List.of(waiter))) {
                return; // the upstream is already late: no reason to make this one wait too
            }
            waiters.add(waiter);
        }

        @Override
        public void onAnswer(ByteBuf answer) {
            end();
            try {
                cache.store(key, query, parsed, answer);
            } catch (RuntimeException e) {
                LOG.debugf(e, "The cache failed to take an answer"); // the waiters get it all the same
            }
            List<Waiter> waiting = takeWaiters();
            if (waiting.isEmpty() || (Header.rcode(Header.flags(answer, answer.readerIndex())) == Rcode.SERVFAIL
                    && serveStale(waiting))) {
                answer.release();
            } else {
                deliver(answer, waiting, false);
            }
            query.release();
        }

        @Override
        public void onFailure(UpstreamFailure failure) {
            end();
            List<Waiter> waiting = takeWaiters();
            if (!serveStale(waiting)) {
                for (Waiter waiter : waiting) {
                    waiter.callback().onFailure(failure);
                }
            }
            query.release();
        }

        /** The stale-answer timer: the upstreams are slow, the waiters get the stale answer now. */
        void staleAnswerTimeout() {
            staleTimer = null;
            if (waiters.isEmpty()) {
                return;
            }
            List<Waiter> waiting = takeWaiters();
            servedStale = serveStale(waiting);
            if (!servedStale) {
                waiters.addAll(waiting); // expired meanwhile: they wait for the upstream after all
            }
        }

        /** Serves the stale answer to {@code waiting}, if the cache still has one; false when it has not. */
        private boolean serveStale(List<Waiter> waiting) {
            if (!serveStale || waiting.isEmpty()) {
                return false;
            }
            Waiter first = waiting.get(0);
            ByteBuf stale = cache.stale(key, first.query(), first.parsed(), cache.now(), first.query().alloc());
            if (stale == null) {
                return false; // a SERVFAIL just stored, say: the waiters get the upstream's own
            }
            deliver(stale, waiting, true);
            return true;
        }

        /** Marks a stale answer as one (RFC 8914: Extended DNS Error 3, or 19 for NXDOMAIN); takes {@code stale} over. */
        private ByteBuf withStaleError(ByteBuf stale, ByteBufAllocator alloc) {
            try {
                Message view = Message.parse(stale);
                ExtendedError ede = view.rcode() == Rcode.NXDOMAIN ? ExtendedError.STALE_NXDOMAIN_ANSWER
                        : ExtendedError.STALE_ANSWER;
                return Replies.withExtendedError(alloc, stale, view, ede);
            } catch (WireFormatException e) {
                return stale.retain(); // stored answers parsed when stored; served without EDE if not
            } finally {
                stale.release();
            }
        }

        /**
         * Gives each waiter the answer as its own: a copy with its ID, RD bit and name case; a
         * {@code stale} one marked as such and counted.
         */
        private void deliver(ByteBuf answer, List<Waiter> waiting, boolean stale) {
            int last = waiting.size() - 1;
            for (int i = 0; i <= last; i++) {
                Waiter waiter = waiting.get(i);
                ByteBuf own = i == last ? answer : answer.copy();
                addressTo(own, waiter);
                if (stale) {
                    metrics.staleAnswer();
                    own = withStaleError(own, waiter.query().alloc());
                }
                waiter.callback().onAnswer(own);
            }
        }

        private List<Waiter> takeWaiters() {
            if (waiters.isEmpty()) {
                return List.of();
            }
            List<Waiter> taken = new ArrayList<>(waiters);
            waiters.clear();
            return taken;
        }

        /** The upstream has called back: no one else joins, the timer stops. */
        private void end() {
            if (inFlight.get(key) == this) {
                inFlight.remove(key);
            }
            if (staleTimer != null) {
                staleTimer.cancel(false);
                staleTimer = null;
            }
        }
    }

    /** Makes a copy of the upstream's answer the answer to one waiter's query. */
    private static void addressTo(ByteBuf answer, Waiter waiter) {
        int start = answer.readerIndex();
        int nameStart = start + Header.LENGTH;
        int nameLength = -1;
        try {
            if (Header.qdcount(answer, start) == 1) {
                nameLength = Names.skip(answer, start, nameStart, answer.writerIndex()) - nameStart;
            }
        } catch (WireFormatException e) {
            // the spelling stays as it came; the pipeline's way back judges the answer
        }
        AnswerRecord.addressTo(answer, nameLength, waiter.query(), waiter.parsed());
    }
}
