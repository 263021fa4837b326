package io.dotproxy.config;

import io.dotproxy.cache.CacheMetrics;
import io.dotproxy.cache.CachingUpstream;
import io.dotproxy.cache.LocalAnswers;
import io.dotproxy.cache.ResponseCache;
import io.dotproxy.guard.Admission;
import io.dotproxy.guard.Guard;
import io.dotproxy.guard.GuardMetrics;
import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.ServerMetrics;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.GroupMetrics;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.Policy;
import io.dotproxy.upstream.TlsClientContext;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamGroup;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.PromiseCombiner;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.List;
import org.jboss.logging.Logger;

/**
 * The one assembly of the proxy: turns a {@link ProxySettings} value into the running parts
 * (upstream group, pipeline, listeners, their meters). Production start-up and the test harness
 * both build the proxy here, so tests run what production runs.
 *
 * <p><b>Threading model.</b> The whole DNS path of one proxy (listeners, client TCP connections,
 * the pipeline, the upstream group, its DoT connections and every timer) runs on the one event loop
 * given here: a query and its answer never change threads, so that state needs no locks and costs
 * no hand-off (handing each query and answer between two loops cost ~5x the CPU per query on UDP).
 * Classes that may be called from elsewhere (health checks, metric scrapes, shutdown) read
 * volatile state or hop onto the loop. Scale out with replicas, or later with one such loop per
 * core (each a lane with its own sockets).
 */
public final class ProxyRuntime {
    private static final Logger LOG = Logger.getLogger(ProxyRuntime.class);

    // In force; replaced on the event loop by apply(). Health checks read the group from elsewhere.
    private ProxySettings settings;
    private volatile UpstreamGroup group;
    private Admission guard;
    private TlsClientContext tls;
    private UpstreamGroup fallback; // null: strict
    private CachingUpstream caching; // null until the cache is first turned on
    /** Every DoT resolver of the settings in force, with its member (in the group, or about to be). */
    private final Map<DotResolver, Member> members;
    /** Members out of the settings that still serve the group in use: retired after the next regroup takes over. */
    private final List<Member> leaving = new ArrayList<>();
    /** Counts regroups, so that a group still connecting ahead is dropped when a newer one comes. */
    private long regroups;
    /** Done once the members the last regroup added have settled: a newer regroup waits for them too. */
    private Future<Void> settling;

    private final QueryPipeline pipeline;
    private final ProxyServer server;
    private final EventLoop loop;
    private final MeterRegistry registry;
    private final GroupMetrics groupMetrics;
    private final GuardMetrics guardMetrics;

    private ProxyRuntime(ProxySettings settings, EventLoop loop, MeterRegistry registry) {
        this.settings = settings;
        this.loop = loop;
        this.registry = registry;
        this.tls = tlsFor(settings.forwarding().caFile());
        this.groupMetrics = new GroupMetrics(registry);
        this.guardMetrics = new GuardMetrics(registry);
        ProxySettings.Forwarding forwarding = settings.forwarding();
        this.members = new LinkedHashMap<>();
        for (DotResolver resolver : forwarding.dot()) {
            members.put(resolver, Member.dot(resolver, tls, loop, forwarding.connections(), forwarding.probing(), registry));
        }
        this.fallback = fallbackFor(forwarding);
        this.group = new UpstreamGroup(List.copyOf(members.values()), Policy.named(forwarding.policy()),
                forwarding.group(), fallback, loop, groupMetrics);
        ServerMetrics serverMetrics = new ServerMetrics(registry);
        this.guard = new Guard(settings.guard(), guardMetrics);
        this.pipeline = new QueryPipeline(guard, LocalAnswers.NONE, group, settings.pipeline(), serverMetrics);
        applyCache(settings.cache(), settings.pipeline().timeout());
        this.server = new ProxyServer(settings.listen(), pipeline, serverMetrics, loop);
    }

    /**
     * Builds the proxy on {@code loop}, registering its meters in {@code registry}; nothing is bound
     * or connected until {@link #start()}.
     *
     * @throws ConfigError when the CA file named in the settings holds no usable certificate
     */
    public static ProxyRuntime assemble(ProxySettings settings, EventLoop loop, MeterRegistry registry) {
        return new ProxyRuntime(settings, loop, registry);
    }

    /**
     * The TLS client context that trusts {@code caFile} besides the system's CAs; a reload builds it
     * off the event loop (reading the file and building the context takes tens of milliseconds).
     *
     * @throws ConfigError when the file holds no usable certificate
     */
    public static TlsClientContext tlsFor(Optional<Path> caFile) {
        try {
            return TlsClientContext.create(caFile);
        } catch (IllegalArgumentException e) {
            throw new ConfigError("dotproxy.tls.ca-file", caFile.map(Path::toString).orElse(""), e.getMessage());
        }
    }

    /** The plain fallback the settings name, as a group of its own, or null. */
    private UpstreamGroup fallbackFor(ProxySettings.Forwarding forwarding) {
        if (forwarding.fallback().isEmpty()) {
            return null;
        }
        List<Member> plain = new ArrayList<>();
        for (InetSocketAddress server : forwarding.fallback()) {
            plain.add(Member.plain(server, loop, forwarding.fallbackMaxInFlight(), forwarding.probing(), registry));
        }
        return UpstreamGroup.plainFallback(plain, forwarding.group().attemptTimeout(), loop, groupMetrics);
    }

    /**
     * Opens a connection to each DoT upstream ahead of the first query, then binds both listeners,
     * blocking until they are bound (call it at start-up, not on an event loop).
     *
     * @throws java.io.UncheckedIOException naming the address when a socket cannot be bound
     */
    public void start() {
        group.members().forEach(member -> member.upstream().connectAhead());
        if (!settings.forwarding().fallback().isEmpty()) {
            LOG.warnf("Plain DNS fallback configured (%s): used only while every DoT upstream is down",
                    settings.forwarding().fallback());
        }
        try {
            server.start();
        } catch (RuntimeException e) {
            group.close(); // the connections opened ahead would otherwise outlive the failed start
            throw e;
        }
        LOG.infof("Forwarding over DNS-over-TLS (%s) to %s (policy %s)", tls.provider(),
                settings.forwarding().dot(),
                settings.forwarding().policy());
    }

    /**
     * Applies {@code next} to the running proxy, from the next query on, without failing a query:
     * <ul>
     *   <li>the guard (allow-list, refusal, rate limits; the rate limiter starts afresh), the
     *       pipeline's settings (deadline, UDP cap, in-flight cap, ECS), and the client TCP limits
     *       (for connections accepted from now on);
     *   <li>the cache's settings: its entries stay (no setting changes what a key means); a smaller
     *       size evicts down to it; turned off, it is emptied; turned on, it starts empty;
     *   <li>the upstreams: resolvers that stay keep their connections, circuit state and latency
     *       history; new ones (every one, with a new CA file or connection tuning) are connected
     *       ahead, and the new group takes queries once their connections are ready or have failed
     *       (within the connect timeout); removed ones take no new query, finish those in flight
     *       (each ends by its deadline), then close, and their meters go; a new fallback likewise;
     *   <li>the group's policy, the resolvers' order, retries, hedging and attempt timeout.
     * </ul>
     * Only the listen address and port, and the drain delay, wait for a restart: they are listed in the result's
     * {@code needsRestart}. Call on the event loop.
     *
     * @return the change against the settings in force, and what was left unapplied
     * @throws ConfigError when a new CA file holds no usable certificate; nothing has changed then
     */
    public Applied apply(ProxySettings next) {
        return apply(next, null);
    }

    /**
     * {@link #apply(ProxySettings)}, with the TLS context of {@code next}'s CA file built ahead by
     * {@link #tlsFor} (off the event loop); null to build it here if the CA file changed.
     */
    public Applied apply(ProxySettings next, TlsClientContext prepared) {
        SettingsChange change = SettingsChange.between(settings, next);
        ProxySettings.Forwarding was = settings.forwarding();
        ProxySettings.Forwarding now = next.forwarding();
        // What can fail comes first, so that a rejected change leaves everything as it was.
        TlsClientContext nextTls = was.caFile().equals(now.caFile()) ? tls
                : prepared != null ? prepared : tlsFor(now.caFile());
        // Queries accepted under the old deadline may still run when it was the longer one.
        Duration deadline = Collections.max(List.of(settings.pipeline().timeout(), next.pipeline().timeout()));

        boolean newGuard = change.changed().contains(SettingsChange.Part.GUARD);
        boolean newPipeline = change.changed().contains(SettingsChange.Part.PIPELINE);
        if (newGuard || newPipeline) {
            if (newGuard) {
                guard = new Guard(next.guard(), guardMetrics);
            }
            pipeline.reconfigure(guard, next.pipeline());
        }
        if (change.changed().contains(SettingsChange.Part.TCP)) {
            server.reconfigure(next.listen().tcp());
        }
        if (change.changed().contains(SettingsChange.Part.CACHE)) {
            applyCache(next.cache(), deadline);
        } else if (newPipeline && caching != null) {
            caching.reconfigure(next.cache(), next.pipeline().timeout()); // the refreshes' deadline
        }
        tls = nextTls;
        boolean newFallback = !was.fallback().equals(now.fallback())
                || was.fallbackMaxInFlight() != now.fallbackMaxInFlight() || !was.probing().equals(now.probing());
        if (newFallback) {
            if (fallback != null) {
                fallback.members().forEach(Member::removeMeters); // before their successors register theirs
                leaving.addAll(fallback.members());
            }
            fallback = fallbackFor(now);
        }
        ProxyServer.Settings listen = settings.listen();
        settings = new ProxySettings(new ProxyServer.Settings(listen.host(), listen.port(), next.listen().tcp(),
                listen.drainDelay()),
                next.guard(), next.pipeline(), next.cache(), now);
        Future<Void> inForce = loop.newSucceededFuture(null);
        if (!change.added().isEmpty() || !change.removed().isEmpty()
                || change.changed().contains(SettingsChange.Part.FORWARDING)) {
            inForce = regroup(change, now, deadline);
        }
        return new Applied(change, change.needsRestart(), inForce);
    }

    /**
     * Turns the cache on or off, or gives it new settings. Once made, the cache is kept (its
     * meters watch it), emptied while it is off. Call before the settings in force are replaced.
     */
    private void applyCache(ResponseCache.Settings cacheSettings, Duration deadline) {
        if (cacheSettings.enabled()) {
            if (caching == null) {
                CacheMetrics metrics = new CacheMetrics(registry);
                ResponseCache cache = new ResponseCache(cacheSettings, System::nanoTime, metrics);
                caching = new CachingUpstream(cache, cacheSettings, group, loop, deadline, metrics);
            } else {
                caching.cache().reconfigure(cacheSettings);
                caching.reconfigure(cacheSettings, deadline);
            }
            pipeline.route(caching, caching);
        } else if (caching != null) {
            pipeline.route(LocalAnswers.NONE, group);
            ResponseCache cache = caching.cache();
            cache.clear();
            // Answers to the queries in flight when it went off would still be stored: empty it again after them.
            loop.schedule(() -> {
                if (!settings.cache().enabled()) {
                    cache.clear();
                }
            }, deadline.plusSeconds(1).toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Builds the group that {@code now} describes: the members of resolvers that stay, new members
     * for those {@code change} adds (connected ahead), none for those it removes. It takes the next
     * queries once every new member's connection is ready or has failed (bounded by the connect
     * and handshake timeouts), unless a newer regroup has come by then; until that moment the group
     * in use keeps serving, so no query waits for a handshake.
     *
     * @return done when the new group has taken over, or a newer one has replaced it
     */
    private Future<Void> regroup(SettingsChange change, ProxySettings.Forwarding now, Duration deadline) {
        for (DotResolver resolver : change.removed()) {
            Member member = members.remove(resolver);
            leaving.add(member);
            // Now, not when it retires: a member added under the same name, in this reload or the
            // next, registers meters of the same names, which must be its own. The queries the
            // leaving member still finishes go uncounted.
            member.removeMeters();
        }
        PromiseCombiner connecting = new PromiseCombiner(loop);
        if (settling != null && !settling.isDone()) {
            connecting.add(settling); // members an earlier regroup added, still connecting, are in this group too
        }
        for (DotResolver resolver : change.added()) {
            Member member = Member.dot(resolver, tls, loop, now.connections(), now.probing(), registry);
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
        if (!settings.cache().enabled()) {
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
     * What a call of {@link #apply} did.
     *
     * @param change the difference from the settings that were in force
     * @param needsRestart the settings (keys or key groups) whose new values wait for a restart
     * @param inForce done once the new upstreams take the queries (new resolvers are connected
     *     first); every other part is in force when {@code apply} returns
     */
    public record Applied(SettingsChange change, List<String> needsRestart, Future<Void> inForce) {}

    /** The settings in force: those assembled, with what {@link #apply} applied since. */
    public ProxySettings settings() {
        return settings;
    }

    /** Closes the listeners and the upstreams at once: the queries in flight get no answer. */
    public void stop() {
        server.stop();
        closeUpstreams();
    }

    /**
     * Closes every upstream: in the group in use, about to take over (which it then never does), or
     * leaving; the fallback too. Closing a member twice is harmless.
     */
    private void closeUpstreams() {
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

    /**
     * The graceful stop (SIGTERM): the listeners drain (see {@link ProxyServer#drain}: not ready at
     * once, serving for the drain delay, then every accepted query answered within its deadline and
     * a second for the way back), then the upstreams close. Blocks the calling thread for all that:
     * call it off the event loop.
     */
    public void drain() {
        Duration deadline = loop.submit(() -> settings.pipeline().timeout()).syncUninterruptibly().getNow();
        server.drain(deadline.plusSeconds(1));
        closeUpstreams();
    }

    public ProxyServer server() {
        return server;
    }

    public UpstreamGroup group() {
        return group;
    }

    public QueryPipeline pipeline() {
        return pipeline;
    }
}
