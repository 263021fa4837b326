package io.dotproxy.upstream;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Rcode;
import io.netty.buffer.ByteBuf;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.ScheduledFuture;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.jboss.logging.Logger;

/**
 * Several upstreams behind one {@link Upstream}: a {@link Policy} picks among the healthy ones,
 * and one deadline per client query covers every attempt.
 *
 * <ul>
 *   <li>An attempt that fails (no connection, refused certificate, broken connection, its own
 *       timeout), or (if so configured) answers SERVFAIL or REFUSED, makes the query move to the
 *       next upstream while time is left. Each attempt but the last possible one is bounded by the
 *       attempt timeout, so a dead upstream costs at most that.
 *   <li>Hedging: an attempt slower than its upstream's recent 95th percentile (never sooner than a
 *       floor) gets one parallel attempt at another healthy upstream; the first answer wins.
 *       Hedges are capped at a share of queries.
 *   <li>When every upstream is down: the plain fallback if one is configured (RFC 8310's
 *       opportunistic profile, opt-in), else the least recently failed upstream is still tried
 *       (unless configured to answer SERVFAIL at once).
 * </ul>
 *
 * <p>A query's attempts, hedge timer and outcome run on the group's event loop, the one its members
 * run on (see {@code ProxyRuntime} for the threading model): no locks. Calls and callbacks that
 * arrive on another thread hop onto that loop first.
 */
public final class UpstreamGroup implements Upstream {
    /**
     * Group behaviour.
     *
     * @param attemptTimeout bound on one attempt when another upstream could still be tried
     * @param retryOnServfail try another upstream after a SERVFAIL answer
     * @param retryOnRefused try another upstream after a REFUSED answer
     * @param hedgeMinDelay no hedge sooner than this after the first attempt; zero disables hedging
     * @param hedgeMaxShare at most this share of queries is hedged (0..1)
     * @param tryWhenAllDown with every upstream down and no fallback, still try the least recently failed
     */
    public record Settings(Duration attemptTimeout, boolean retryOnServfail, boolean retryOnRefused,
                           Duration hedgeMinDelay, double hedgeMaxShare, boolean tryWhenAllDown) {}

    private static final Logger LOG = Logger.getLogger(UpstreamGroup.class);

    private final List<Member> members;
    private final Policy policy;
    private final Settings settings;
    private final UpstreamGroup fallback;
    private final EventLoop loop;
    private final GroupMetrics metrics;
    private final HedgeBudget hedgeBudget;
    private final AtomicBoolean onFallback = new AtomicBoolean();

    /**
     * @param fallback plain-DNS upstreams used only while every member is down, or null (strict)
     * @param loop the event loop every query of the group runs on
     */
    public UpstreamGroup(List<Member> members, Policy policy, Settings settings, UpstreamGroup fallback,
                         EventLoop loop, GroupMetrics metrics) {
        if (members.isEmpty()) {
            throw new IllegalArgumentException("no upstream");
        }
        this.members = List.copyOf(members);
        this.policy = policy;
        this.settings = settings;
        this.fallback = fallback;
        this.loop = loop;
        this.metrics = metrics;
        this.hedgeBudget = new HedgeBudget(settings.hedgeMaxShare());
    }

    /**
     * The plain fallback: its servers in order, every answer taken as it is, no hedging, and tried
     * even when they all look down (it is the last resort already).
     */
    public static UpstreamGroup plainFallback(List<Member> servers, Duration attemptTimeout, EventLoop loop,
                                              GroupMetrics metrics) {
        return new UpstreamGroup(servers, new Policy.Failover(),
                new Settings(attemptTimeout, false, false, Duration.ZERO, 0, true), null, loop, metrics);
    }

    @Override
    public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
        Query attempts = new Query(query, parsed, deadlineNanos, callback);
        if (loop.inEventLoop()) {
            attempts.start();
        } else {
            try {
                loop.execute(attempts::start);
            } catch (RejectedExecutionException shuttingDown) {
                attempts.refuse();
            }
        }
    }

    @Override
    public String name() {
        return "group";
    }

    public List<Member> members() {
        return members;
    }

    /** Whether clear-text fallback is configured and every DoT upstream is down right now. */
    public boolean usingFallback() {
        return fallback != null && onFallback.get();
    }

    @Override
    public void close() {
        members.forEach(Member::close);
        if (fallback != null) {
            fallback.close();
        }
    }

    /** The attempts made for one client query; runs on the group's event loop. */
    private final class Query {
        private final ByteBuf query;
        private final Message parsed;
        private final long deadlineNanos;
        private final QueryCallback callback;
        private final boolean[] tried = new boolean[members.size()];
        private int outstanding;
        private boolean done;
        private boolean hedged;
        private boolean fellBack;
        private ByteBuf retryableAnswer;
        private UpstreamFailure lastFailure = UpstreamFailure.UNAVAILABLE;
        private ScheduledFuture<?> hedgeTimer;

        Query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
            // Our own reference: attempts may still read the query after the client's answer went
            // out (a losing hedge moving on, the fallback's next server), until the last one settles.
            this.query = query.retain();
            this.parsed = parsed;
            this.deadlineNanos = deadlineNanos;
            this.callback = callback;
        }

        void start() {
            hedgeBudget.countQuery();
            try {
                startAttempts();
            } finally {
                releaseWhenSettled();
            }
        }

        /** The loop is shutting down: no attempt can run. */
        void refuse() {
            done = true;
            query.release();
            callback.onFailure(UpstreamFailure.UNAVAILABLE);
        }

        private void startAttempts() {
            Member first = launchNext();
            if (first != null && !done && settings.hedgeMinDelay().toNanos() > 0 && hasCandidate()) {
                long delay = Math.max(settings.hedgeMinDelay().toNanos(), first.latency().p95Nanos());
                if (System.nanoTime() + delay - deadlineNanos < 0) {
                    hedgeTimer = loop.schedule(this::hedge, delay, TimeUnit.NANOSECONDS);
                }
            }
        }

        private void hedge() {
            if (done || hedged || !hasCandidate() || !hedgeBudget.tryHedge()) {
                return; // a hedge only ever goes to another healthy upstream
            }
            hedged = true;
            Member target = launchNext();
            if (target != null) {
                target.health().metrics().hedged();
            }
        }

        /** Starts the next attempt; the member tried, or null when none could be (then maybe done). */
        private Member launchNext() {
            long now = System.nanoTime();
            List<Member> candidates = candidates();
            Member member;
            if (!candidates.isEmpty()) {
                member = candidates.get(policy.pick(candidates));
                if (onFallback.get() && onFallback.compareAndSet(true, false)) {
                    LOG.infof("Upstream %s is usable again; plain DNS fallback no longer used", member.name());
                }
            } else if (allDown() && fallback != null) {
                if (fellBack) {
                    finishIfIdle();
                    return null;
                }
                fellBack = true;
                if (onFallback.compareAndSet(false, true)) {
                    LOG.warn("Every DoT upstream is down: answering over the plain DNS fallback until one recovers");
                }
                metrics.fallback();
                outstanding++;
                fallback.query(query, parsed, deadlineNanos, new Attempt(this, null, now));
                return null;
            } else if (settings.tryWhenAllDown() && allDown()) {
                member = leastRecentlyFailedUntried();
                if (member == null) {
                    finishIfIdle();
                    return null;
                }
            } else {
                finishIfIdle();
                return null;
            }
            int index = members.indexOf(member);
            tried[index] = true;
            boolean last = !hasCandidate() && !(allDown() && fallback != null && !fellBack)
                    && !(allDown() && settings.tryWhenAllDown() && leastRecentlyFailedUntried() != null);
            long attemptDeadline = last ? deadlineNanos : Math.min(deadlineNanos, now + settings.attemptTimeout().toNanos());
            if (deadlineNanos - attemptDeadline < 0) {
                attemptDeadline = deadlineNanos;
            }
            outstanding++;
            member.upstream().query(query, parsed, attemptDeadline, new Attempt(this, member, now));
            return member;
        }

        private List<Member> candidates() {
            List<Member> candidates = new ArrayList<>(members.size());
            for (int i = 0; i < members.size(); i++) {
                if (isCandidate(i)) {
                    candidates.add(members.get(i));
                }
            }
            return candidates;
        }

        private boolean hasCandidate() {
            for (int i = 0; i < members.size(); i++) {
                if (isCandidate(i)) {
                    return true;
                }
            }
            return false;
        }

        /** Healthy and not tried yet for this query. */
        private boolean isCandidate(int index) {
            return !tried[index] && members.get(index).health().isUp();
        }

        private boolean allDown() {
            for (Member member : members) {
                if (member.health().isUp()) {
                    return false;
                }
            }
            return true;
        }

        private Member leastRecentlyFailedUntried() {
            Member best = null;
            for (int i = 0; i < members.size(); i++) {
                Member member = members.get(i);
                if (!tried[i] && (best == null || member.health().lastFailureNanos() - best.health().lastFailureNanos() < 0)) {
                    best = member;
                }
            }
            return best;
        }

        private boolean released;

        /** Drops our reference to the query once it is answered and no attempt is out. */
        private void releaseWhenSettled() {
            if (done && outstanding == 0 && !released) {
                released = true;
                query.release();
            }
        }

        void answered(ByteBuf answer) {
            outstanding--;
            try {
                onAnswer(answer);
            } finally {
                releaseWhenSettled();
            }
        }

        private void onAnswer(ByteBuf answer) {
            if (done) {
                answer.release(); // the other attempt won
                return;
            }
            int rcode = Header.rcode(Header.flags(answer, answer.readerIndex()));
            boolean retryable = (rcode == Rcode.SERVFAIL && settings.retryOnServfail())
                    || (rcode == Rcode.REFUSED && settings.retryOnRefused());
            if (retryable && timeLeft()) {
                if (retryableAnswer != null) {
                    retryableAnswer.release();
                }
                retryableAnswer = answer; // the best we have, should no other upstream do better
                launchNext();
                return;
            }
            complete(answer);
        }

        void failed(UpstreamFailure failure) {
            outstanding--;
            try {
                if (done) {
                    return;
                }
                lastFailure = failure;
                if (timeLeft()) {
                    launchNext();
                } else {
                    finishIfIdle();
                }
            } finally {
                releaseWhenSettled();
            }
        }

        private boolean timeLeft() {
            return System.nanoTime() - deadlineNanos < 0;
        }

        /** Ends the query with what it has, unless an attempt is still out. */
        private void finishIfIdle() {
            if (done || outstanding > 0) {
                return;
            }
            if (retryableAnswer != null) {
                ByteBuf answer = retryableAnswer;
                retryableAnswer = null;
                complete(answer);
                return;
            }
            done = true;
            cancelHedge();
            callback.onFailure(lastFailure);
        }

        private void complete(ByteBuf answer) {
            done = true;
            cancelHedge();
            if (retryableAnswer != null && retryableAnswer != answer) {
                retryableAnswer.release();
                retryableAnswer = null;
            }
            callback.onAnswer(answer);
        }

        private void cancelHedge() {
            if (hedgeTimer != null) {
                hedgeTimer.cancel(false);
            }
        }
    }

    /** One attempt at one member; feeds the member's health before the query's logic. */
    private final class Attempt implements QueryCallback {
        private final Query query;
        private final Member member;
        private final long startedNanos;

        Attempt(Query query, Member member, long startedNanos) {
            this.query = query;
            this.member = member;
            this.startedNanos = startedNanos;
        }

        @Override
        public void onAnswer(ByteBuf answer) {
            if (!loop.inEventLoop()) {
                try {
                    loop.execute(() -> onAnswer(answer));
                } catch (RejectedExecutionException shuttingDown) {
                    answer.release(); // the group's loop is gone: no client waits any more
                }
                return;
            }
            try {
                if (member != null) {
                    member.latency().record(System.nanoTime() - startedNanos);
                    member.health().succeeded();
                }
            } finally {
                query.answered(answer);
            }
        }

        @Override
        public void onFailure(UpstreamFailure failure) {
            if (!loop.inEventLoop()) {
                try {
                    loop.execute(() -> onFailure(failure));
                } catch (RejectedExecutionException shuttingDown) {
                    // the group's loop is gone: no client waits any more
                }
                return;
            }
            if (member != null) {
                member.health().failed(failure);
            }
            query.failed(failure);
        }
    }
}
