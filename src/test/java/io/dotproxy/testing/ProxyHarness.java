package io.dotproxy.testing;

import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.ServerMetrics;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.GroupMetrics;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.Policy;
import io.dotproxy.upstream.TlsClientContext;
import io.dotproxy.upstream.UpstreamAddress;
import io.dotproxy.upstream.UpstreamGroup;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.channel.EventLoopGroup;
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
 * The proxy assembled as {@code Setup} assembles it, without Quarkus: listeners on loopback port
 * 0, DoT upstreams trusting a {@link TestCa}, meters in a registry the test can read.
 */
public final class ProxyHarness implements AutoCloseable {
    /** The name every fake upstream's certificate is checked against, unless a test says otherwise. */
    public static final String TLS_NAME = "dns.test";

    /** The production transport where it exists (epoll on Linux, as Vert.x runs there), else NIO. */
    private final EventLoopGroup group = Epoll.isAvailable() ? new EpollEventLoopGroup(2) : new NioEventLoopGroup(2);
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final ProxyServer server;
    private final UpstreamGroup upstreams;

    /** How to assemble the proxy; defaults suit one-upstream tests (no hedging, attempt = deadline). */
    public static final class Builder {
        private final TestCa ca;
        private final List<String> specs = new ArrayList<>();
        private final List<InetSocketAddress> fallback = new ArrayList<>();
        private Duration timeout = Duration.ofSeconds(2);
        private Duration attemptTimeout;
        private Policy policy = new Policy.Failover();
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

        public Builder policy(Policy value) {
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

        public ProxyHarness start() {
            return new ProxyHarness(this);
        }
    }

    private ProxyHarness(Builder b) {
        try {
            Path caFile = b.ca.writePem(Files.createTempFile("test-ca", ".pem"));
            TlsClientContext tls = TlsClientContext.create(Optional.of(caFile));
            Duration attempt = b.attemptTimeout != null ? b.attemptTimeout : b.timeout;
            DotUpstream.Settings settings = new DotUpstream.Settings(attempt, b.idleTimeout, b.maxInFlight,
                    b.poolSize, b.handshakesPerSecond, b.handshakeBurst, b.pins);
            GroupMetrics groupMetrics = new GroupMetrics(registry);
            Member.Probing probing = new Member.Probing(b.firstBackOff, Duration.ofSeconds(5), attempt);
            List<Member> members = new ArrayList<>();
            for (String spec : b.specs) {
                members.add(Member.dot(UpstreamAddress.parse(spec, 853), tls, group.next(), settings, probing, registry));
            }
            UpstreamGroup plain = null;
            if (!b.fallback.isEmpty()) {
                List<Member> plainMembers = new ArrayList<>();
                for (InetSocketAddress address : b.fallback) {
                    plainMembers.add(Member.plain(address, group.next(), probing, registry));
                }
                plain = UpstreamGroup.plainFallback(plainMembers, attempt, group.next(), groupMetrics);
            }
            upstreams = new UpstreamGroup(members, b.policy, new UpstreamGroup.Settings(attempt, true, true,
                    b.hedgeMinDelay, b.hedgeShare, b.tryWhenAllDown), plain, group.next(), groupMetrics);
            ServerMetrics metrics = new ServerMetrics(registry);
            QueryPipeline pipeline = new QueryPipeline(upstreams, b.timeout, 1232, metrics);
            server = new ProxyServer(new ProxyServer.Settings("127.0.0.1", 0, Duration.ofSeconds(2), 50),
                    pipeline, metrics, group);
            server.start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
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

    public int port() {
        return server.port();
    }

    public UpstreamGroup upstreams() {
        return upstreams;
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
        server.stop();
        upstreams.close();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
