package io.dotproxy.testing;

import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.server.ServerMetrics;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.TlsClientContext;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamAddress;
import io.dotproxy.upstream.UpstreamMetrics;
import io.dotproxy.upstream.Upstreams;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.channel.nio.NioEventLoopGroup;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The proxy assembled as {@code Setup} assembles it, without Quarkus: listeners on loopback port
 * 0, DoT upstreams trusting a {@link TestCa}, meters in a registry the test can read.
 */
public final class ProxyHarness implements AutoCloseable {
    /** The name every fake upstream's certificate is checked against, unless a test says otherwise. */
    public static final String TLS_NAME = "dns.test";

    private final NioEventLoopGroup group = new NioEventLoopGroup(2);
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final ProxyServer server;
    private final Upstream upstreams;

    private ProxyHarness(List<String> upstreamSpecs, TestCa ca, Duration timeout, int maxUdpPayload) {
        try {
            Path caFile = ca.writePem(Files.createTempFile("test-ca", ".pem"));
            TlsClientContext tls = TlsClientContext.create(Optional.of(caFile));
            DotUpstream.Settings settings = new DotUpstream.Settings(timeout, Duration.ofSeconds(30), 1000,
                    Duration.ofMillis(200));
            List<Upstream> members = new ArrayList<>();
            for (String spec : upstreamSpecs) {
                UpstreamAddress address = UpstreamAddress.parse(spec, 853);
                members.add(new DotUpstream(address, tls, group.next(), settings,
                        new UpstreamMetrics(registry, address.toString())));
            }
            upstreams = new Upstreams(members);
            ServerMetrics metrics = new ServerMetrics(registry);
            QueryPipeline pipeline = new QueryPipeline(upstreams, timeout, maxUdpPayload, metrics);
            server = new ProxyServer(new ProxyServer.Settings("127.0.0.1", 0, Duration.ofSeconds(2), 50),
                    pipeline, metrics, group);
            server.start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A proxy in front of the given fake upstreams, in order of preference. */
    public static ProxyHarness start(TestCa ca, Duration timeout, FakeUpstream... fakes) {
        List<String> specs = new ArrayList<>();
        for (FakeUpstream fake : fakes) {
            specs.add("127.0.0.1:" + fake.port() + "#" + TLS_NAME);
        }
        return new ProxyHarness(specs, ca, timeout, 1232);
    }

    /** A proxy in front of upstreams written as in {@code dotproxy.upstreams}. */
    public static ProxyHarness start(TestCa ca, Duration timeout, List<String> upstreamSpecs) {
        return new ProxyHarness(upstreamSpecs, ca, timeout, 1232);
    }

    public int port() {
        return server.port();
    }

    /** The value of a counter, 0 when no such counter exists. */
    public double count(String name, String... tags) {
        Counter counter = registry.find(name).tags(tags).counter();
        return counter == null ? 0 : counter.count();
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
