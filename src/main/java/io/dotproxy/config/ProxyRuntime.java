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
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
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
    private final Map<DotResolver, Member> members;
    private final QueryPipeline pipeline;
    private final ProxyServer server;
    private final Parts parts;

    /** What the assembly made once and a reload builds on: the loop, the meters, TLS, the fallback. */
    private record Parts(EventLoop loop, MeterRegistry registry, TlsClientContext tls, GroupMetrics groupMetrics,
                         UpstreamGroup fallback, GuardMetrics guardMetrics, Consumer<Upstream> forwardTo) {}

    private ProxyRuntime(ProxySettings settings, UpstreamGroup group, Map<DotResolver, Member> members,
                         Admission guard, QueryPipeline pipeline, ProxyServer server, Parts parts) {
        this.settings = settings;
        this.group = group;
        this.members = members;
        this.guard = guard;
        this.pipeline = pipeline;
        this.server = server;
        this.parts = parts;
    }

    /**
     * Builds the proxy on {@code loop}, registering its meters in {@code registry}; nothing is bound
     * or connected until {@link #start()}.
     *
     * @throws ConfigError when the CA file named in the settings holds no usable certificate
     */
    public static ProxyRuntime assemble(ProxySettings settings, EventLoop loop, MeterRegistry registry) {
        ProxySettings.Forwarding forwarding = settings.forwarding();
        TlsClientContext tls;
        try {
            tls = TlsClientContext.create(forwarding.caFile());
        } catch (IllegalArgumentException e) {
            throw new ConfigError("dotproxy.tls.ca-file", forwarding.caFile().map(Path::toString).orElse(""), e.getMessage());
        }
        GroupMetrics groupMetrics = new GroupMetrics(registry);
        Map<DotResolver, Member> members = new LinkedHashMap<>();
        for (DotResolver resolver : forwarding.dot()) {
            members.put(resolver, Member.dot(resolver, tls, loop, forwarding.connections(), forwarding.probing(), registry));
        }
        UpstreamGroup fallback = null;
        if (!forwarding.fallback().isEmpty()) {
            List<Member> plain = new ArrayList<>();
            for (InetSocketAddress server : forwarding.fallback()) {
                plain.add(Member.plain(server, loop, forwarding.fallbackMaxInFlight(), forwarding.probing(), registry));
            }
            fallback = UpstreamGroup.plainFallback(plain, forwarding.group().attemptTimeout(), loop, groupMetrics);
        }
        UpstreamGroup group = new UpstreamGroup(List.copyOf(members.values()), Policy.named(forwarding.policy()),
                forwarding.group(), fallback, loop, groupMetrics);
        ServerMetrics serverMetrics = new ServerMetrics(registry);
        GuardMetrics guardMetrics = new GuardMetrics(registry);
        Guard guard = new Guard(settings.guard(), guardMetrics);
        LocalAnswers localAnswers = LocalAnswers.NONE;
        Upstream forwardTo = group;
        CachingUpstream caching = null;
        ResponseCache.Settings cacheSettings = settings.cache();
        if (cacheSettings.enabled()) {
            CacheMetrics cacheMetrics = new CacheMetrics(registry);
            ResponseCache cache = new ResponseCache(cacheSettings, System::nanoTime, cacheMetrics);
            caching = new CachingUpstream(cache, cacheSettings, group, loop, settings.pipeline().timeout(), cacheMetrics);
            localAnswers = caching;
            forwardTo = caching;
        }
        QueryPipeline pipeline = new QueryPipeline(guard, localAnswers, forwardTo, settings.pipeline(), serverMetrics);
        ProxyServer server = new ProxyServer(settings.listen(), pipeline, serverMetrics, loop);
        Consumer<Upstream> swap = caching != null ? caching::forwardTo : pipeline::forwardTo;
        return new ProxyRuntime(settings, group, members, guard, pipeline, server,
                new Parts(loop, registry, tls, groupMetrics, fallback, guardMetrics, swap));
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
        LOG.infof("Forwarding over DNS-over-TLS (%s) to %s (policy %s)", parts.tls().provider(),
                settings.forwarding().dot(),
                settings.forwarding().policy());
    }

    /**
     * Applies, from the next query on, what of {@code next} this runtime can change while it runs:
     * <ul>
     *   <li>the guard (allow-list, refusal, rate limits; the rate limiter starts afresh);
     *   <li>the pipeline's settings (deadline, UDP cap, in-flight cap, ECS);
     *   <li>the DoT resolver list: resolvers that stay keep their connections, circuit state and
     *       latency history; new ones are connected ahead; removed ones take no new query, and are
     *       closed (and their meters removed) once every query sent to them has had its deadline;
     *   <li>the group's policy, the resolvers' order, retries and hedging.
     * </ul>
     * The rest stays as it is and is listed in
     * the result's {@code needsRestart}: the listen address always, and for now a new CA file or
     * connection tuning, the fallback, the attempt timeout (it is also the probes'), the cache's
     * and the client TCP settings. Call on the event loop.
     *
     * @return the change against the settings in force, and what was left unapplied
     */
    public Applied apply(ProxySettings next) {
        SettingsChange change = SettingsChange.between(settings, next);
        List<String> notApplied = new ArrayList<>(change.needsRestart());
        boolean newGuard = change.changed().contains(SettingsChange.Part.GUARD);
        if (newGuard || change.changed().contains(SettingsChange.Part.PIPELINE)) {
            if (newGuard) {
                guard = new Guard(next.guard(), parts.guardMetrics());
            }
            pipeline.reconfigure(guard, next.pipeline());
        }
        ProxySettings.Forwarding was = settings.forwarding();
        ProxySettings.Forwarding now = next.forwarding();
        boolean resolversChanged = !change.added().isEmpty() || !change.removed().isEmpty();
        boolean newTls = !was.caFile().equals(now.caFile()) || !was.connections().equals(now.connections());
        boolean applyResolvers = resolversChanged && !newTls;
        if (resolversChanged && newTls) {
            notApplied.add("dotproxy.upstreams, dotproxy.tls.ca-file, dotproxy.upstream.* (a new CA file or connection tuning)");
        }
        // Policy, order, retries and hedging live in the group: a new group applies them. The
        // fallback and the probing live in members: they wait for a restart.
        boolean fallbackOrProbing = !was.fallback().equals(now.fallback())
                || was.fallbackMaxInFlight() != now.fallbackMaxInFlight() || !was.probing().equals(now.probing());
        boolean applyForwarding = change.changed().contains(SettingsChange.Part.FORWARDING) && !fallbackOrProbing;
        if (fallbackOrProbing) {
            notApplied.add("dotproxy.fallback, dotproxy.fallback-max-in-flight, dotproxy.upstream.attempt-timeout");
        }
        List<DotResolver> resolvers = was.dot();
        String policy = applyForwarding ? now.policy() : was.policy();
        UpstreamGroup.Settings groupSettings = applyForwarding ? now.group() : was.group();
        if (applyResolvers || applyForwarding) {
            // The new list, or the new order of the same resolvers; the old list when it must wait.
            resolvers = applyResolvers || !resolversChanged ? now.dot() : was.dot();
            regroup(applyResolvers ? change : null, resolvers, policy, groupSettings, next.pipeline().timeout());
        }
        for (SettingsChange.Part part : change.changed()) {
            switch (part) {
                case TCP -> notApplied.add("dotproxy.tcp.*");
                case CACHE -> notApplied.add("dotproxy.cache.*");
                default -> { } // applied above, or named above
            }
        }
        // What is in force now: the applied parts from next, the rest as it was.
        settings = new ProxySettings(settings.listen(), next.guard(), next.pipeline(), settings.cache(),
                new ProxySettings.Forwarding(resolvers, policy, was.fallback(), was.fallbackMaxInFlight(),
                        was.caFile(), was.connections(), groupSettings, was.probing()));
        return new Applied(change, List.copyOf(notApplied));
    }

    /**
     * A new group takes the next queries: the resolvers in {@code order} (those that stay are the
     * same members), under {@code policy} and {@code groupSettings}; with {@code membership}, its
     * added resolvers are connected ahead and its removed ones retire.
     */
    private void regroup(SettingsChange membership, List<DotResolver> order, String policy,
                         UpstreamGroup.Settings groupSettings, Duration deadline) {
        ProxySettings.Forwarding forwarding = settings.forwarding();
        List<Member> retiring = new ArrayList<>();
        if (membership != null) {
            for (DotResolver resolver : membership.added()) {
                Member member = Member.dot(resolver, parts.tls(), parts.loop(), forwarding.connections(),
                        forwarding.probing(), parts.registry());
                member.upstream().connectAhead();
                members.put(resolver, member);
            }
            for (DotResolver resolver : membership.removed()) {
                retiring.add(members.remove(resolver));
            }
        }
        List<Member> inOrder = order.stream().map(members::get).toList();
        UpstreamGroup replacement = new UpstreamGroup(inOrder, Policy.named(policy), groupSettings, parts.fallback(),
                parts.loop(), parts.groupMetrics());
        parts.forwardTo().accept(replacement);
        group = replacement;
        if (!retiring.isEmpty()) {
            // Every query already sent to them ends by its deadline; a little more for the answer's way back.
            parts.loop().schedule(() -> retiring.forEach(Member::retire), deadline.plusSeconds(1).toMillis(),
                    TimeUnit.MILLISECONDS);
        }
    }

    /**
     * What a call of {@link #apply} did.
     *
     * @param change the difference from the settings that were in force
     * @param needsRestart the settings (keys or key groups) whose new values wait for a restart
     */
    public record Applied(SettingsChange change, List<String> needsRestart) {}

    /** The settings in force: those assembled, with what {@link #apply} applied since. */
    public ProxySettings settings() {
        return settings;
    }

    /** Closes the listeners and the upstreams at once: the queries in flight get no answer. */
    public void stop() {
        server.stop();
        group.close();
    }

    /**
     * The graceful stop (SIGTERM): the listeners drain (see {@link ProxyServer#drain}: not ready at
     * once, serving for the drain delay, then every accepted query answered within its deadline and
     * a second for the way back), then the upstreams close. Blocks the calling thread for all that:
     * call it off the event loop.
     */
    public void drain() {
        Duration deadline = parts.loop().submit(() -> settings.pipeline().timeout()).syncUninterruptibly().getNow();
        server.drain(deadline.plusSeconds(1));
        group.close();
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
