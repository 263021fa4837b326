package io.dotproxy.config;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * Every setting of the proxy, under {@code dotproxy.}; each can also be given as an environment
 * variable ({@code dotproxy.tls.ca-file} is {@code DOTPROXY_TLS_CA_FILE}). {@link SettingsReader}
 * checks the values and reads them into one {@link ProxySettings} value, which is all the rest of
 * the proxy takes.
 */
@ConfigMapping(prefix = "dotproxy")
public interface ProxyConfig {
    /**
     * DoT resolvers in order of preference, comma-separated, each {@code address[:port][#tls-name]};
     * port 853 by default, and without a TLS name the certificate must match the address.
     * The environment variable {@code DoT_HOST}, when set, replaces the list with its one host.
     */
    @WithDefault("1.1.1.1:853#cloudflare-dns.com,1.0.0.1:853#cloudflare-dns.com")
    List<String> upstreams();

    /**
     * A properties file with more of these settings (a mounted ConfigMap, say). Its values override
     * the built-in ones and {@code application.properties}; environment variables and {@code -D}
     * override the file, and the proxy warns of each file key so masked. Read at start-up.
     */
    Optional<String> configFile();

    /** Deadline of each client query, every upstream attempt included; then SERVFAIL. */
    @WithDefault("2s")
    Duration timeout();

    /**
     * Lanes that serve queries, each on an event loop of its own with its own sockets (SO_REUSEPORT)
     * and upstream connections; unset: the CPUs the process may use (the container's CPU limit).
     */
    Optional<Integer> eventLoops();

    /** How the next upstream is picked among healthy ones: fastest, failover, round-robin or random. */
    @WithDefault("fastest")
    String policy();

    /**
     * Plain DNS servers ({@code address[:port]}, port 53) used only while every DoT upstream is
     * down. Unset: strict profile (RFC 8310), no clear-text DNS ever.
     */
    Optional<List<String>> fallback();

    /** Queries at once per plain fallback server at most, each with its own socket; more fail at once. */
    @WithDefault("256")
    int fallbackMaxInFlight();

    /** Upstream answers that make a query try the next upstream: servfail, refused, or none. */
    @WithDefault("servfail,refused")
    List<String> retryOn();

    /** With every upstream down (and no fallback): try the least recently failed one, or servfail at once. */
    @WithDefault("try")
    String allDown();

    /**
     * Clients that may ask, as CIDRs (IPv4 and IPv6, comma-separated; an IPv4-mapped IPv6 client
     * matches IPv4 entries). Unset: loopback, RFC 1918, 100.64.0.0/10, link-local and fc00::/7, so
     * a cluster works and the internet is refused. {@code 0.0.0.0/0,::/0} lets everyone ask.
     */
    Optional<List<String>> allow();

    /** What a UDP client outside the allow-list gets: answer (REFUSED) or drop (nothing). TCP clients get REFUSED. */
    @WithDefault("answer")
    String refuse();

    /**
     * A client's EDNS Client Subnet option (RFC 7871): strip (removed before the query goes
     * upstream, so pod and node addresses never reach a resolver) or pass (kept).
     */
    @WithDefault("strip")
    String ecs();

    /** Queries in flight in the whole process at most; beyond it a query gets SERVFAIL at once. */
    @WithDefault("10000")
    int maxInFlight();

    /** Per-client rate limits (off unless {@code qps} is set). */
    RateLimit rateLimit();

    /** The response cache. */
    Cache cache();

    /**
     * Answers kept as wire bytes for their TTL (RFC 2308 for negative answers), served stale when
     * the upstreams fail (RFC 8767), identical queries in flight sent once.
     */
    interface Cache {
        /** Whether answers are cached at all. */
        @WithDefault("true")
        boolean enabled();

        /**
         * Memory the cached answers may take at most, in octets or with a suffix k, m or g (powers
         * of 1024), e.g. 8m; when it is full, names not asked again since they were stored go first.
         */
        @WithDefault("8m")
        String maxSize();

        /** Floor of every positive answer's TTL; 0 keeps the upstream's. */
        @WithDefault("0s")
        Duration minTtl();

        /** Cap of every positive answer's TTL. */
        @WithDefault("1d")
        Duration maxTtl();

        /** Cap of how long NXDOMAIN and NODATA answers are kept (RFC 2308 §5). */
        @WithDefault("1h")
        Duration maxNegativeTtl();

        /** How long past its TTL an answer may still be served stale while the upstreams fail; 0s: never. */
        @WithDefault("1d")
        Duration maxStale();

        /** How long a query whose stale answer is at hand waits for the upstreams before it gets that answer. */
        @WithDefault("1800ms")
        Duration staleAnswerTimeout();

        /** Hits after which an entry is refreshed in the last tenth of its TTL, before it expires; 0: never. */
        @WithDefault("3")
        int prefetch();
    }

    /**
     * A token bucket per client prefix; a client over its limit for {@code block-after} is blocked
     * for {@code block-time}. Off by default: clients on host networking or behind SNAT share one
     * address, and one limit for all of them would refuse a whole node.
     */
    interface RateLimit {
        /** Queries per second per client prefix, sustained; 0 turns rate limiting off. */
        @WithDefault("0")
        double qps();

        /** Queries a client may send at once above the rate. Unset: twice {@code qps}. */
        Optional<Integer> burst();

        /** How long a client may stay over its limit before it is blocked. */
        @WithDefault("2s")
        Duration blockAfter();

        /** How long a block lasts. */
        @WithDefault("60s")
        Duration blockTime();

        /** Of a limited client's UDP queries, every Nth gets an empty TC=1 answer (a retry over TCP); 0: none. */
        @WithDefault("2")
        int slip();

        /** IPv4 clients share a bucket per prefix of this length. */
        @WithDefault("32")
        int ipv4Prefix();

        /** IPv6 clients share a bucket per prefix of this length (a /64 is one host or LAN). */
        @WithDefault("64")
        int ipv6Prefix();

        /** Clients (CIDRs) never rate limited, such as a node-local cache. */
        Optional<List<String>> exempt();

        /** Client prefixes tracked at most; the least recently seen goes first. */
        @WithDefault("100000")
        int maxClients();
    }

    /** Hedged second attempts. */
    Hedge hedge();

    /** Hedging: a second attempt to another upstream when the first is slower than usual. */
    interface Hedge {
        /** No hedge sooner than this; otherwise after the upstream's p95. 0 turns hedging off. */
        @WithDefault("100ms")
        Duration minDelay();

        /** At most this share of queries is hedged (0 to 1). */
        @WithDefault("0.05")
        double maxShare();
    }

    /** Where clients reach the proxy. */
    Listen listen();

    /** Trust for the upstreams' certificates. */
    Tls tls();

    /** Client TCP connections. */
    Tcp tcp();

    /** Client UDP answers. */
    Udp udp();

    /** Connections to the upstreams. */
    Upstream upstream();

    /** The graceful stop on SIGTERM. */
    Shutdown shutdown();

    /** Listening address and port, shared by UDP and TCP. */
    interface Listen {
        /** IP address to bind; {@code ::} is every IPv6 and IPv4 address. */
        @WithDefault("::")
        String host();

        /** Port for UDP and TCP; 0 picks a free one. */
        @WithDefault("53")
        int port();
    }

    /** Trust settings. */
    interface Tls {
        /** PEM file of CA certificates trusted in addition to the system's (for private resolvers). */
        Optional<String> caFile();
    }

    /** Client TCP settings (RFC 7766). */
    interface Tcp {
        /** A client connection with no query outstanding is closed after this long. */
        @WithDefault("10s")
        Duration idleTimeout();

        /** Client connections open at once at most; more are closed on accept. */
        @WithDefault("1000")
        int maxConnections();

        /** Connections from one client address at most; more are closed on accept. */
        @WithDefault("100")
        int maxConnectionsPerClient();

        /** Once a frame's first octet has arrived, the whole frame must arrive within this, or the connection closes. */
        @WithDefault("5s")
        Duration frameTimeout();

        /**
         * A connection takes no more queries after this many and closes once they are answered; 0: no
         * limit. Off by default, as in dnsdist and unbound: a client that pipelines and does not retry
         * (RFC 7766 asks it to) loses the queries it sent after the limit.
         */
        @WithDefault("0")
        int maxQueries();

        /** A connection takes no more queries after this age and closes once they are answered; 0: no limit (the default, as above). */
        @WithDefault("0s")
        Duration maxAge();
    }

    /** Client UDP settings. */
    interface Udp {
        /** Largest UDP answer, even if a client advertises more (DNS Flag Day 2020: 1232). */
        @WithDefault("1232")
        int maxPayload();
    }

    /** How the proxy stops. */
    interface Shutdown {
        /**
         * On SIGTERM, readiness goes down at once and the proxy keeps answering this long (so that
         * the Service's endpoints and kube-proxy stop sending here); then it stops accepting, answers
         * every query it accepted, and exits. 0s: stop accepting at once.
         */
        @WithDefault("5s")
        Duration drainDelay();
    }

    /** Upstream connection settings. */
    interface Upstream {
        /** An upstream connection with nothing in flight is closed after this long. */
        @WithDefault("30s")
        Duration idleTimeout();

        /** TLS connections per upstream at most. */
        @WithDefault("2")
        int poolSize();

        /**
         * Queries in flight on one upstream connection at most (1 to 65535: one message ID each); when
         * every connection of the pool is full, more wait in a bounded queue until their deadline.
         */
        @WithDefault("100")
        int maxInFlight();

        /** Bound on one attempt when another upstream could still be tried. */
        @WithDefault("1s")
        Duration attemptTimeout();

        /** New TLS connections per second per upstream, sustained (the handshake budget). */
        @WithDefault("1")
        double handshakesPerSecond();

        /** New TLS connections per upstream allowed at once before that rate applies. */
        @WithDefault("4")
        int handshakeBurst();

        /**
         * SPKI pins (RFC 7858 §4.2) as {@code tls-name=base64-sha256}, comma-separated; list a name
         * twice for a backup pin. An upstream whose TLS name has pins must present a matching key.
         */
        Optional<List<String>> spkiPins();
    }
}
