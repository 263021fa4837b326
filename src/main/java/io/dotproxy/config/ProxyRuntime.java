package io.dotproxy.config;

import io.dotproxy.cache.CacheMetrics;
import io.dotproxy.cache.ResponseCache;
import io.dotproxy.guard.Admission;
import io.dotproxy.guard.Guard;
import io.dotproxy.guard.GuardMetrics;
import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.ServerMetrics;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.GroupMetrics;
import io.dotproxy.upstream.Standing;
import io.dotproxy.upstream.TlsClientContext;
import io.dotproxy.upstream.UpstreamGroup;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.PromiseNotifier;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.jboss.logging.Logger;

/**
 * The one assembly of the proxy: turns a {@link ProxySettings} value into the running parts
 * (lanes, listeners, the shared guard and cache, the meters). Production start-up and the test
 * harness both build the proxy here, so tests run what production runs.
 *
 * <p><b>Threading model.</b> The proxy runs as one or more {@link Lane}s, one per event loop
 * ({@code dotproxy.event-loops}, by default one per CPU). A lane's DNS path (its listeners with
 * SO_REUSEPORT, client TCP connections, the pipeline, its upstream connections and every timer)
 * runs on its loop alone: a query and its answer never change threads, so that state needs no
 * locks and costs no hand-off (handing each query and answer between two loops cost ~5x the CPU
 * per query on UDP). The lanes share what must be one for the process, each behind a lock held
 * briefly or read-mostly: the rate limiter, the cache's entries (in segments), each upstream's
 * circuit breaker, meters and handshake budget ({@link Standing}), the counts of connections and
 * queries in flight. Classes that may be called from elsewhere (health checks, metric scrapes,
 * reloads, shutdown) read volatile state or hop onto the loops.
 */
public final class ProxyRuntime {
    private static final Logger LOG = Logger.getLogger(ProxyRuntime.class);

    // Shared by the lanes; replaced by apply(), which holds this object's lock.
    private volatile ProxySettings settings;
    private Admission guard;
    private TlsClientContext tls;
    /** Every DoT resolver of the settings in force, with its standing (meters, circuit, handshake budget). */
    private final Map<DotResolver, Standing> standings = new LinkedHashMap<>();
    /** The plain fallback's standings, in the settings' order. */
    private List<Standing> fallbackStandings;
    private ResponseCache cache; // null until the cache is first turned on
    private CacheMetrics cacheMetrics;

    private final List<Lane> lanes = new ArrayList<>();
    private final ProxyServer server;
    private final EventLoop home;
    private final MeterRegistry registry;
    private final GroupMetrics groupMetrics;
    private final GuardMetrics guardMetrics;

    private ProxyRuntime(ProxySettings settings, List<EventLoop> loops, MeterRegistry registry) {
        if (loops.isEmpty()) {
            throw new IllegalArgumentException("at least one event loop");
        }
        this.settings = settings;
        this.home = loops.get(0);
        this.registry = registry;
        this.tls = tlsFor(settings.forwarding().caFile());
        this.groupMetrics = new GroupMetrics(registry);
        this.guardMetrics = new GuardMetrics(registry);
        ProxySettings.Forwarding forwarding = settings.forwarding();
        for (DotResolver resolver : forwarding.dot()) {
            standings.put(resolver, Standing.dot(resolver, forwarding.connections(), forwarding.probing(), home, registry,
                    loops.size()));
        }
        this.fallbackStandings = fallbackStandingsFor(forwarding);
        ServerMetrics serverMetrics = new ServerMetrics(registry);
        this.guard = new Guard(settings.guard(), guardMetrics);
        if (settings.cache().enabled()) {
            makeCache(settings.cache(), loops.size());
        }
        List<ProxyServer.Lane> ends = new ArrayList<>();
        for (EventLoop loop : loops) {
            Lane lane = new Lane(loop, settings, tls, standings, fallbackStandings, guard, cache,
                    cacheMetrics, groupMetrics, serverMetrics);
            lanes.add(lane);
            ends.add(new ProxyServer.Lane(loop, lane.pipeline()));
        }
        this.server = new ProxyServer(settings.listen(), ends, serverMetrics);
    }

    /**
     * Builds the proxy as one lane on each of {@code loops} (distinct loops: the settings'
     * {@code eventLoops} of them), registering its meters in {@code registry}; nothing is bound or
     * connected until {@link #start()}.
     *
     * @throws ConfigError when the CA file named in the settings holds no usable certificate
     */
    public static ProxyRuntime assemble(ProxySettings settings, List<EventLoop> loops, MeterRegistry registry) {
        return new ProxyRuntime(settings, List.copyOf(loops), registry);
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

    private List<Standing> fallbackStandingsFor(ProxySettings.Forwarding forwarding) {
        List<Standing> plain = new ArrayList<>();
        for (InetSocketAddress server : forwarding.fallback()) {
            plain.add(Standing.plain(server, forwarding.probing(), home, registry));
        }
        return plain;
    }

    private void makeCache(ResponseCache.Settings cacheSettings, int laneCount) {
        cacheMetrics = new CacheMetrics(registry);
        cache = new ResponseCache(cacheSettings, System::nanoTime, cacheMetrics, laneCount);
    }

    /**
     * Opens a connection to each DoT upstream ahead of the first query, from every lane, then
     * binds the listeners, blocking until they are bound (call it at start-up, not on an event loop).
     *
     * @throws java.io.UncheckedIOException naming the address when a socket cannot be bound
     */
    public void start() {
        lanes.forEach(Lane::connectAhead);
        if (!settings.forwarding().fallback().isEmpty()) {
            LOG.warnf("Plain DNS fallback configured (%s): used only while every DoT upstream is down",
                    settings.forwarding().fallback());
        }
        try {
            server.start();
        } catch (RuntimeException e) {
            lanes.forEach(Lane::closeUpstreams); // the connections opened ahead would otherwise outlive the failed start
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
     * Only the listen address and port, the event loops and the drain delay wait for a restart:
     * they are listed in the result's {@code needsRestart}. May be called from any thread; each
     * lane applies its part on its own loop (at once, for the lane whose loop calls).
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
    public synchronized Applied apply(ProxySettings next, TlsClientContext prepared) {
        SettingsChange change = SettingsChange.between(settings, next);
        ProxySettings.Forwarding was = settings.forwarding();
        ProxySettings.Forwarding now = next.forwarding();
        // What can fail comes first, so that a rejected change leaves everything as it was.
        TlsClientContext nextTls = was.caFile().equals(now.caFile()) ? tls
                : prepared != null ? prepared : tlsFor(now.caFile());
        // Queries accepted under the old deadline may still run when it was the longer one.
        Duration deadline = Collections.max(List.of(settings.pipeline().timeout(), next.pipeline().timeout()));

        if (change.changed().contains(SettingsChange.Part.GUARD)) {
            guard = new Guard(next.guard(), guardMetrics);
        }
        if (change.changed().contains(SettingsChange.Part.TCP)) {
            server.reconfigure(next.listen().tcp());
        }
        if (change.changed().contains(SettingsChange.Part.CACHE)) {
            applyCache(next.cache(), deadline);
        }
        tls = nextTls;
        List<Standing> newFallback = null;
        if (!was.fallback().equals(now.fallback()) || was.fallbackMaxInFlight() != now.fallbackMaxInFlight()
                || !was.probing().equals(now.probing())) {
            fallbackStandings.forEach(Standing::removeMeters); // before their successors register theirs
            fallbackStandings = fallbackStandingsFor(now);
            newFallback = fallbackStandings;
        }
        boolean regroup = !change.added().isEmpty() || !change.removed().isEmpty()
                || change.changed().contains(SettingsChange.Part.FORWARDING);
        if (regroup) {
            for (DotResolver resolver : change.removed()) {
                // Now, not when its members retire: a resolver added under the same name, in this
                // reload or the next, registers meters of the same names, which must be its own.
                // The queries the leaving members still finish go uncounted.
                standings.remove(resolver).removeMeters();
            }
            for (DotResolver resolver : change.added()) {
                standings.put(resolver, Standing.dot(resolver, now.connections(), now.probing(), home, registry,
                        lanes.size()));
            }
        }
        ProxyServer.Settings listen = settings.listen();
        settings = new ProxySettings(new ProxyServer.Settings(listen.host(), listen.port(), next.listen().tcp(),
                listen.drainDelay(), listen.eventLoops()),
                next.guard(), next.pipeline(), next.cache(), now);
        Lane.Plan plan = new Lane.Plan(change, settings, deadline, guard, cache, cacheMetrics, tls,
                Map.copyOf(standings), newFallback, regroup);
        List<Future<Void>> applied = new ArrayList<>();
        for (Lane lane : lanes) {
            applied.add(onLoop(lane.loop, () -> lane.apply(plan)));
        }
        return new Applied(change, change.needsRestart(), allOf(applied));
    }

    /**
     * Turns the shared cache on or off, or gives it new settings. Once made, the cache is kept (its
     * meters watch it), emptied while it is off; each lane turns its own front on or off.
     */
    private void applyCache(ResponseCache.Settings cacheSettings, Duration deadline) {
        if (cacheSettings.enabled()) {
            if (cache == null) {
                makeCache(cacheSettings, lanes.size());
            } else {
                cache.reconfigure(cacheSettings);
            }
        } else if (cache != null) {
            ResponseCache emptied = cache;
            emptied.clear();
            // Answers to the queries in flight when it went off would still be stored: empty it again after them.
            home.schedule(() -> {
                if (!settings.cache().enabled()) {
                    emptied.clear();
                }
            }, deadline.plusSeconds(1).toMillis(), TimeUnit.MILLISECONDS);
        }
    }

    /** Runs {@code step} on {@code loop}: at once when called there, else as a task; its future, flattened. */
    private static Future<Void> onLoop(EventLoop loop, Callable<Future<Void>> step) {
        if (loop.inEventLoop()) {
            try {
                return step.call();
            } catch (Exception e) {
                return loop.newFailedFuture(e);
            }
        }
        Promise<Void> done = loop.newPromise();
        loop.execute(() -> {
            try {
                step.call().addListener(new PromiseNotifier<>(done));
            } catch (Exception e) {
                done.setFailure(e);
            }
        });
        return done;
    }

    /** Done once every one of {@code futures} is; failed if any failed (a lane left half applied: logged). */
    private Future<Void> allOf(List<Future<Void>> futures) {
        Promise<Void> all = home.newPromise();
        AtomicInteger left = new AtomicInteger(futures.size());
        for (Future<Void> future : futures) {
            future.addListener(f -> {
                if (!f.isSuccess()) {
                    LOG.errorf(f.cause(), "A lane could not apply the new settings");
                    all.tryFailure(f.cause());
                } else if (left.decrementAndGet() == 0) {
                    all.trySuccess(null);
                }
            });
        }
        return all;
    }

    /**
     * What a call of {@link #apply} did.
     *
     * @param change the difference from the settings that were in force
     * @param needsRestart the settings (keys or key groups) whose new values wait for a restart
     * @param inForce done once every lane has applied the change and the new upstreams take the
     *     queries (new resolvers are connected first); in the lane whose loop called, every other
     *     part is in force when {@code apply} returns
     */
    public record Applied(SettingsChange change, List<String> needsRestart, Future<Void> inForce) {}

    /** The settings in force: those assembled, with what {@link #apply} applied since. */
    public ProxySettings settings() {
        return settings;
    }

    /** Closes the listeners and the upstreams at once: the queries in flight get no answer. */
    public void stop() {
        server.stop();
        lanes.forEach(Lane::closeUpstreams);
    }

    /**
     * The graceful stop (SIGTERM): the listeners drain (see {@link ProxyServer#drain}: not ready at
     * once, serving for the drain delay, then every accepted query answered within its deadline and
     * a second for the way back), then the upstreams close. Blocks the calling thread for all that:
     * call it off the event loops.
     */
    public void drain() {
        Duration deadline = settings.pipeline().timeout();
        server.drain(deadline.plusSeconds(1));
        lanes.forEach(Lane::closeUpstreams);
    }

    public ProxyServer server() {
        return server;
    }

    /** The first lane's upstream group (every lane's shares its members' standings). */
    public UpstreamGroup group() {
        return lanes.get(0).group();
    }

    /** The first lane's pipeline. */
    public QueryPipeline pipeline() {
        return lanes.get(0).pipeline();
    }

    /** Whether clear-text fallback is configured and some lane sends queries to it now (every DoT upstream down). */
    public boolean usingFallback() {
        return lanes.stream().anyMatch(lane -> lane.group().usingFallback());
    }
}
