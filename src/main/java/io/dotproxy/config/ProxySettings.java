package io.dotproxy.config;

import io.dotproxy.cache.ResponseCache;
import io.dotproxy.guard.Guard;
import io.dotproxy.server.ProxyServer;
import io.dotproxy.server.QueryPipeline;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.DotUpstream;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.UpstreamGroup;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Every setting of the proxy as one immutable value: {@link SettingsReader} builds it from the
 * configuration and checks every value on the way, {@link ProxyRuntime} builds the running proxy
 * from it. Two values are equal when every setting is (a CA file compares by its path, not its
 * contents), so a reload can tell what changed.
 *
 * @param listen where clients reach the proxy, and its client TCP limits
 * @param guard who may ask, and how fast
 * @param pipeline the per-query deadline, the UDP answer size limit and the cap on queries in flight
 * @param cache what answers are kept, how long, and in how much memory
 * @param forwarding where queries go, and how
 */
public record ProxySettings(ProxyServer.Settings listen, Guard.Settings guard, QueryPipeline.Settings pipeline,
                            ResponseCache.Settings cache, Forwarding forwarding) {

    /**
     * Where queries go, and how: the upstreams and the group's behaviour.
     *
     * @param dot the DoT resolvers in order of preference, each with its SPKI pins
     * @param policy how the next resolver is picked: a name of {@link io.dotproxy.upstream.Policy#NAMES}
     * @param fallback plain DNS servers used only while every DoT resolver is down; empty: strict
     * @param fallbackMaxInFlight queries at once per fallback server at most (each has a socket)
     * @param caFile extra trusted CA certificates (PEM), if any
     * @param connections tuning of each resolver's connection pool
     * @param group retries, hedging and what to do when every resolver is down
     * @param probing how a resolver whose circuit is open is probed
     */
    public record Forwarding(List<DotResolver> dot, String policy, List<InetSocketAddress> fallback,
                             int fallbackMaxInFlight, Optional<Path> caFile,
                            DotUpstream.Settings connections, UpstreamGroup.Settings group, Member.Probing probing) {
        public Forwarding {
            dot = List.copyOf(dot);
            fallback = List.copyOf(fallback);
        }
    }
}
