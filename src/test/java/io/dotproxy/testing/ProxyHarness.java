package io.dotproxy.testing;

import io.dotproxy.cache.ResponseCache;
import io.dotproxy.config.ProxyRuntime;
import io.dotproxy.config.ProxySettings;
import io.dotproxy.guard.AddressSet;
import io.dotproxy.guard.Guard;
import io.dotproxy.guard.RateLimiter;
import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.TcpListener;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.UpstreamAddress;
import io.dotproxy.upstream.UpstreamGroup;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.EventExecutor;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * The proxy built by production's own assembly ({@link ProxyRuntime}) from a settings value, without
 * Quarkus: listeners on loopback port 0, DoT upstreams trusting a {@link TestCa}, meters in a
 * registry the test can read, and one event loop for the whole DNS path (or one for each of
 * {@link Builder#lanes} lanes), as in production.
 */
public final class ProxyHarness implements AutoCloseable {
    /** The name every fake upstream's certificate is checked against, unless a test says otherwise. */
    public static final String TLS_NAME = "dns.test";

    /** The cache's default settings, as {@code dotproxy.cache.*} has them, but off. */
    public static final ResponseCache.Settings CACHE_OFF = new ResponseCache.Settings(false, 8 << 20, Duration.ZERO,
            Duration.ofDays(1), Duration.ofHours(1), Duration.ofDays(1), Duration.ofMillis(1800), 3);

    /** A loop per lane, on the production transport where it exists (epoll on Linux, as Vert.x runs there), else NIO. */
    private final EventLoopGroup loop;
    private final List<EventLoop> loops = new ArrayList<>();
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final ProxyRuntime runtime;

    /** How to assemble the proxy; defaults suit one-upstream tests (no hedging, attempt = deadline). */
    public static final class Builder {
        private final TestCa ca;
        private final List<String> specs = new ArrayList<>();
        private final List<InetSocketAddress> fallback = new ArrayList<>();
        private Duration timeout = Duration.ofSeconds(2);
        private Duration attemptTimeout;
        private String policy = "failover";
        private int poolSize = 2;
        private int maxInFlight = 100;
        private Duration hedgeMinDelay = Duration.ZERO;
        private double hedgeShare = 0.05;
        private boolean tryWhenAllDown = true;
        private Duration firstBackOff = Duration.ofMillis(200);
        private Duration idleTimeout = Duration.ofSeconds(30);
        private Set<String> pins = Set.of();
        private int handshakeBurst = 10;
        private double handshakesPerSecond = 50;
        private List<String> allow = AddressSet.PRIVATE_NETWORKS;
        private Optional<RateLimiter.Settings> rateLimit = Optional.empty();
        private int queriesInFlight = 10_000;
        private int fallbackMaxInFlight = 256;
        private boolean stripClientSubnet = true;
        private ResponseCache.Settings cache = CACHE_OFF;
        private TcpListener.Settings tcp = new TcpListener.Settings(Duration.ofSeconds(2), 50, 50, Duration.ofSeconds(5),
                0, Duration.ZERO);
        private Duration drainDelay = Duration.ZERO;
        private int lanes = 1;
        private int port;

        private Builder(TestCa ca) {
            this.ca = ca;
        }

        public Builder upstream(FakeUpstream fake) {
            return upstream("127.0.0.1:" + fake.port() + "#" + TLS_NAME);
        }

        public Builder upstream(String spec) {
            specs.add(spec);
            return this;
        }

        /** Queries at once per fallback server, as {@code dotproxy.fallback-max-in-flight}. */
        public Builder fallbackMaxInFlight(int value) {
            fallbackMaxInFlight = value;
            return this;
        }

        public Builder fallback(InetSocketAddress server) {
            fallback.add(server);
            return this;
        }

        public Builder timeout(Duration value) {
            timeout = value;
            return this;
        }

        public Builder attemptTimeout(Duration value) {
            attemptTimeout = value;
            return this;
        }

        /** A policy by its name in {@code dotproxy.policy}. */
        public Builder policy(String value) {
            policy = value;
            return this;
        }

        public Builder poolSize(int value) {
            poolSize = value;
            return this;
        }

        public Builder maxInFlight(int value) {
            maxInFlight = value;
            return this;
        }

        public Builder hedging(Duration minDelay, double maxShare) {
            hedgeMinDelay = minDelay;
            hedgeShare = maxShare;
            return this;
        }

        public Builder servfailWhenAllDown() {
            tryWhenAllDown = false;
            return this;
        }

        public Builder firstBackOff(Duration value) {
            firstBackOff = value;
            return this;
        }

        public Builder idleTimeout(Duration value) {
            idleTimeout = value;
            return this;
        }

        public Builder handshakeBudget(int burst, double perSecond) {
            handshakeBurst = burst;
            handshakesPerSecond = perSecond;
            return this;
        }

        public Builder pins(Set<String> value) {
            pins = value;
            return this;
        }

        /** Clients that may ask (CIDRs), as {@code dotproxy.allow}; loopback is in the default. */
        public Builder allow(List<String> cidrs) {
            allow = cidrs;
            return this;
        }

        public Builder rateLimit(RateLimiter.Settings value) {
            rateLimit = Optional.of(value);
            return this;
        }

        /** Client TCP limits, as {@code dotproxy.tcp.*}. */
        public Builder tcp(TcpListener.Settings value) {
            tcp = value;
            return this;
        }

        /** How long a {@link ProxyHarness#drain()} keeps serving, as {@code dotproxy.shutdown.drain-delay}; 0 unless set. */
        public Builder drainDelay(Duration value) {
            drainDelay = value;
            return this;
        }

        /** The cap on queries in flight in the whole proxy, as {@code dotproxy.max-in-flight}. */
        public Builder queriesInFlight(int value) {
            queriesInFlight = value;
            return this;
        }

        /** Whether a client's ECS option is removed, as {@code dotproxy.ecs} = strip (the default) or pass. */
        public Builder stripClientSubnet(boolean value) {
            stripClientSubnet = value;
            return this;
        }

        /**
         * A response cache with these settings. Without it the harness runs with the cache off, so
         * that every query of an engine test reaches the fake upstream.
         */
        public Builder cache(ResponseCache.Settings value) {
            cache = value;
            return this;
        }

        /** Lanes, each on an event loop of its own (listeners bound with SO_REUSEPORT); 1 by default. */
        public Builder lanes(int value) {
            lanes = value;
            return this;
        }

        /** The port to listen on (0, the default: a free one). */
        public Builder port(int value) {
            port = value;
            return this;
        }

        public ProxyHarness start() {
            return new ProxyHarness(this);
        }
    }

    private ProxyHarness(Builder b) {
        loop = Epoll.isAvailable() ? new EpollEventLoopGroup(b.lanes) : new NioEventLoopGroup(b.lanes);
        for (EventExecutor executor : loop) {
            loops.add((EventLoop) executor);
        }
        try {
            Path caFile = b.ca.writePem(Files.createTempFile("test-ca", ".pem"));
            Duration attempt = b.attemptTimeout != null ? b.attemptTimeout : b.timeout;
            List<DotResolver> dot = new ArrayList<>();
            for (String spec : b.specs) {
                dot.add(new DotResolver(UpstreamAddress.parse(spec, 853), b.pins));
            }
            ProxySettings settings = new ProxySettings(
                    new ProxyServer.Settings("127.0.0.1", b.port, b.tcp, b.drainDelay, b.lanes),
                    new Guard.Settings(AddressSet.parse(b.allow), false, b.rateLimit, AddressSet.parse(List.of())),
                    new QueryPipeline.Settings(b.timeout, 1232, b.queriesInFlight, b.stripClientSubnet),
                    b.cache,
                    new ProxySettings.Forwarding(dot, b.policy, b.fallback, b.fallbackMaxInFlight, Optional.of(caFile),
                            new DotUpstream.Settings(attempt, b.idleTimeout, b.maxInFlight, b.poolSize,
                                    b.handshakesPerSecond, b.handshakeBurst),
                            new UpstreamGroup.Settings(attempt, true, true, b.hedgeMinDelay, b.hedgeShare, b.tryWhenAllDown),
                            new Member.Probing(b.firstBackOff, Duration.ofSeconds(5), attempt)));
            runtime = ProxyRuntime.assemble(settings, loops, registry);
            runtime.start();
        } catch (IOException e) {
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw new UncheckedIOException(e);
        } catch (RuntimeException e) {
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
    }

    public static Builder builder(TestCa ca) {
        return new Builder(ca);
    }

    /** A proxy in front of the given fake upstreams, in order of preference. */
    public static ProxyHarness start(TestCa ca, Duration timeout, FakeUpstream... fakes) {
        Builder builder = builder(ca).timeout(timeout);
        for (FakeUpstream fake : fakes) {
            builder.upstream(fake);
        }
        return builder.start();
    }

    /** A proxy in front of upstreams written as in {@code dotproxy.upstreams}. */
    public static ProxyHarness start(TestCa ca, Duration timeout, List<String> upstreamSpecs) {
        Builder builder = builder(ca).timeout(timeout);
        upstreamSpecs.forEach(builder::upstream);
        return builder.start();
    }

    /** The settings in force. */
    public ProxySettings settings() {
        return runtime.settings();
    }

    /**
     * Applies {@code next} as a reload does, on the proxy's event loop, and waits until all of it
     * is in force (new upstreams connected and taking queries).
     */
    public ProxyRuntime.Applied apply(ProxySettings next) throws Exception {
        ProxyRuntime.Applied applied = applyAsync(next);
        applied.inForce().get(10, TimeUnit.SECONDS);
        return applied;
    }

    /** Applies {@code next} as a reload does, and returns without waiting for new upstreams to take over. */
    public ProxyRuntime.Applied applyAsync(ProxySettings next) throws Exception {
        return loops.get(0).submit(() -> runtime.apply(next)).get(5, TimeUnit.SECONDS);
    }

    public int port() {
        return runtime.server().port();
    }

    public UpstreamGroup group() {
        return runtime.group();
    }

    /** The graceful stop, as on SIGTERM ({@link ProxyRuntime#drain()}); blocks until the listeners close. */
    public void drain() {
        runtime.drain();
    }

    /** The listeners, for what a stop changes: readiness, the port. */
    public ProxyServer server() {
        return runtime.server();
    }

    /** The pipeline's count of queries accepted and not yet answered or dropped. */
    public int inFlight() {
        return runtime.pipeline().inFlight();
    }

    /** The sum of the counters (plain or function) with this name and these tags; 0 when there are none. */
    public double count(String name, String... tags) {
        return registry.find(name).tags(tags).counters().stream().mapToDouble(Counter::count).sum()
                + registry.find(name).tags(tags).functionCounters().stream().mapToDouble(c -> c.count()).sum();
    }

    /** The value of a gauge, NaN when there is none. */
    public double gauge(String name, String... tags) {
        Gauge gauge = registry.find(name).tags(tags).gauge();
        return gauge == null ? Double.NaN : gauge.value();
    }

    public SimpleMeterRegistry registry() {
        return registry;
    }

    @Override
    public void close() {
        runtime.stop();
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
