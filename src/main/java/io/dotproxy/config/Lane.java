package io.dotproxy.config;

import io.dotproxy.cache.CacheMetrics;
import io.dotproxy.cache.CachingUpstream;
import io.dotproxy.cache.LocalAnswers;
import io.dotproxy.cache.ResponseCache;
import io.dotproxy.guard.Admission;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.ServerMetrics;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.GroupMetrics;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.Policy;
import io.dotproxy.upstream.Standing;
import io.dotproxy.upstream.TlsClientContext;
import io.dotproxy.upstream.UpstreamGroup;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.PromiseCombiner;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One lane of the proxy: an event loop and what runs on it alone, so that a query and its answer
 * never change threads: the pipeline, the cache's front ({@link CachingUpstream}: coalescing,
 * serve-stale, prefetch), the upstream group with a member (and connections) of its own for each
 * resolver, and the plain fallback. What the lanes share is given to it ({@link ProxyRuntime}):
 * the guard, the cache's entries, each upstream's {@link Standing}, the meters.
 *
 * <p>Everything here runs on {@link #loop}, but for construction; {@link #group()} may be read
 * from elsewhere.
 */
final class Lane {
    /**
     * What a reload changes in every lane, decided once by {@link ProxyRuntime#apply}.
     *
     * @param change the difference from the settings in force
     * @param next the settings from now on
     * @param deadline the longer of the old and new query deadlines: what queries in flight may still take
     * @param guard the admission stage, new or as it was
     * @param cache the shared cache, once it has been turned on (null before)
     * @param cacheMetrics its meters (null with it)
     * @param tls the TLS context for new members
     * @param standings every DoT resolver's standing after the reload
     * @param fallback the new fallback's standings, in the settings' order; null: the fallback stays
     * @param regroup whether the upstream group is rebuilt
     */
    record Plan(SettingsChange change, ProxySettings next, Duration deadline, Admission guard, ResponseCache cache,
                CacheMetrics cacheMetrics, TlsClientContext tls, Map<DotResolver, Standing> standings,
                List<Standing> fallback, boolean regroup) {}

    final EventLoop loop;
    private final GroupMetrics groupMetrics;
    private final QueryPipeline pipeline;
    private volatile UpstreamGroup group;
    private UpstreamGroup fallback; // null: strict
    private CachingUpstream caching; // null until the cache is first turned on
    private boolean cacheOn;
    /** Every DoT resolver of the settings in force, with this lane's member (in the group, or about to be). */
    private final Map<DotResolver, Member> members = new LinkedHashMap<>();
    /** Members out of the settings that still serve the group in use: retired after the next regroup takes over. */
    private final List<Member> leaving = new ArrayList<>();
    /** Counts regroups, so that a group still connecting ahead is dropped when a newer one comes. */
    private long regroups;
    /** Done once the members the last regroup added have settled: a newer regroup waits for them too. */
    private Future<Void> settling;

    /**
     * A lane of {@code settings} on {@code loop}.
     *
     * @param cache the shared cache when it is on, else null
     */
    Lane(EventLoop loop, ProxySettings settings, TlsClientContext tls, Map<DotResolver, Standing> standings,
         List<Standing> fallbackStandings, Admission guard, ResponseCache cache, CacheMetrics cacheMetrics,
         GroupMetrics groupMetrics, ServerMetrics serverMetrics) {
        this.loop = loop;
        this.groupMetrics = groupMetrics;
        ProxySettings.Forwarding forwarding = settings.forwarding();
        for (DotResolver resolver : forwarding.dot()) {
            members.put(resolver, Member.dot(resolver, tls, loop, forwarding.connections(), forwarding.probing(),
                    standings.get(resolver)));
        }
        this.fallback = fallbackFor(forwarding, fallbackStandings);
        this.group = new UpstreamGroup(List.copyOf(members.values()), Policy.named(forwarding.policy()),
                forwarding.group(), fallback, loop, groupMetrics);
        this.pipeline = new QueryPipeline(guard, LocalAnswers.NONE, group, settings.pipeline(), serverMetrics);
        if (cache != null) {
            applyCache(settings.cache(), settings.pipeline().timeout(), cache, cacheMetrics);
        }
    }

    /**
     * The plain fallback of {@code forwarding}, as a group of this lane's own, or null. The
     * per-server cap counts every lane's queries (the standing keeps the count).
     */
    private UpstreamGroup fallbackFor(ProxySettings.Forwarding forwarding, List<Standing> standings) {
        if (forwarding.fallback().isEmpty()) {
            return null;
        }
        List<Member> plain = new ArrayList<>();
        for (int i = 0; i < forwarding.fallback().size(); i++) {
            InetSocketAddress server = forwarding.fallback().get(i);
            plain.add(Member.plain(server, loop, forwarding.fallbackMaxInFlight(), forwarding.probing(), standings.get(i)));
        }
        return UpstreamGroup.plainFallback(plain, forwarding.group().attemptTimeout(), loop, groupMetrics);
    }

    /** Opens a connection to each DoT upstream ahead of the first query. */
    void connectAhead() {
        group.members().forEach(member -> member.upstream().connectAhead());
    }

    /**
     * Applies {@code plan} to this lane, on its loop.
     *
     * @return done once a rebuilt upstream group has taken over (at once when there is none)
     */
    Future<Void> apply(Plan plan) {
        Duration deadline = plan.deadline();
        ProxySettings next = plan.next();
        boolean newGuard = plan.change().changed().contains(SettingsChange.Part.GUARD);
        boolean newPipeline = plan.change().changed().contains(SettingsChange.Part.PIPELINE);
        if (newGuard || newPipeline) {
            pipeline.reconfigure(plan.guard(), next.pipeline());
        }
        if (plan.change().changed().contains(SettingsChange.Part.CACHE)) {
            applyCache(next.cache(), deadline, plan.cache(), plan.cacheMetrics());
        } else if (newPipeline && caching != null) {
            caching.reconfigure(next.cache(), next.pipeline().timeout()); // the refreshes' deadline
        }
        if (plan.fallback() != null) {
            if (fallback != null) {
                leaving.addAll(fallback.members());
            }
            fallback = fallbackFor(next.forwarding(), plan.fallback());
        }
        if (!plan.regroup()) {
            return loop.newSucceededFuture(null);
        }
        return regroup(plan, deadline);
    }

    /**
     * Turns this lane's front of the cache on or off, or gives it new settings; the shared entries
     * are {@link ProxyRuntime}'s to keep or empty. Once made, the front is kept.
     */
    private void applyCache(ResponseCache.Settings cacheSettings, Duration deadline, ResponseCache cache,
                            CacheMetrics cacheMetrics) {
        cacheOn = cacheSettings.enabled();
        if (cacheOn) {
            if (caching == null) {
                caching = new CachingUpstream(cache, cacheSettings, group, loop, deadline, cacheMetrics);
            } else {
                caching.reconfigure(cacheSettings, deadline);
            }
            pipeline.route(caching, caching);
        } else if (caching != null) {
            pipeline.route(LocalAnswers.NONE, group);
        }
    }

    /**
     * Builds the group that the plan's settings describe: the members of resolvers that stay, new
     * members for those it adds (connected ahead), none for those it removes. It takes the next
     * queries once every new member's connection is ready or has failed (bounded by the connect
     * and handshake timeouts), unless a newer regroup has come by then; until that moment the group
     * in use keeps serving, so no query waits for a handshake.
     *
     * @return done when the new group has taken over, or a newer one has replaced it
     */
    private Future<Void> regroup(Plan plan, Duration deadline) {
        ProxySettings.Forwarding now = plan.next().forwarding();
        for (DotResolver resolver : plan.change().removed()) {
            Member member = members.remove(resolver);
            leaving.add(member);
            // Now, not when it retires (ProxyRuntime has done it already for every lane): a member
            // added under the same name registers meters of the same names, which must be its own.
            member.removeMeters();
        }
        PromiseCombiner connecting = new PromiseCombiner(loop);
        if (settling != null && !settling.isDone()) {
            connecting.add(settling); // members an earlier regroup added, still connecting, are in this group too
        }
        for (DotResolver resolver : plan.change().added()) {
            Member member = Member.dot(resolver, plan.tls(), loop, now.connections(), now.probing(),
                    plan.standings().get(resolver));
            members.put(resolver, member);
            connecting.add(member.upstream().connectAhead());
        }
        UpstreamGroup replacement = new UpstreamGroup(now.dot().stream().map(members::get).toList(),
                Policy.named(now.policy()), now.group(), fallback, loop, groupMetrics);
        long generation = ++regroups;
        Promise<Void> settled = loop.newPromise();
        connecting.finish(settled);
        settling = settled;
        // Connect and handshake are each bounded by the connect timeout; the timer is a backstop.
        Duration atMost = now.connections().connectTimeout().multipliedBy(2).plusSeconds(1);
        ScheduledFuture<?> backstop = loop.schedule(() -> settled.trySuccess(null), atMost.toMillis(),
                TimeUnit.MILLISECONDS);
        Promise<Void> tookOver = loop.newPromise();
        settled.addListener(done -> {
            backstop.cancel(false);
            if (generation == regroups) {
                takeOver(replacement, deadline);
            }
            tookOver.setSuccess(null);
        });
        return tookOver;
    }

    /** {@code replacement} takes the next queries; the members that left retire once their queries have had their deadline. */
    private void takeOver(UpstreamGroup replacement, Duration deadline) {
        if (caching != null) {
            caching.forwardTo(replacement);
        }
        if (!cacheOn) {
            pipeline.route(LocalAnswers.NONE, replacement);
        }
        group = replacement;
        if (!leaving.isEmpty()) {
            List<Member> retiring = List.copyOf(leaving);
            leaving.clear();
            // A little more than the deadline, for the answers' way back.
            loop.schedule(() -> retiring.forEach(Member::retire), deadline.plusSeconds(1).toMillis(),
                    TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Closes every upstream of this lane: in the group in use, about to take over (which it then
     * never does), or leaving; the fallback too. Closing a member twice is harmless.
     */
    void closeUpstreams() {
        loop.execute(() -> {
            regroups++;
            group.close();
            if (fallback != null) {
                fallback.close();
            }
            members.values().forEach(Member::close);
            leaving.forEach(Member::close);
        });
    }

    QueryPipeline pipeline() {
        return pipeline;
    }

    UpstreamGroup group() {
        return group;
    }
}
