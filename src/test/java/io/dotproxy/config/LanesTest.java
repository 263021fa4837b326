package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.cache.ResponseCache;
import io.dotproxy.guard.AddressSet;
import io.dotproxy.guard.Guard;
import io.dotproxy.guard.RateLimiter;
import io.dotproxy.server.TcpListener;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.UpstreamAddress;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.nio.channels.DatagramChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;

/**
 * The proxy on two lanes (two event loops, each with its own UDP socket and TCP acceptor on the
 * one port, SO_REUSEPORT), seen from outside: the kernel spreads clients over both, each lane
 * keeps upstream connections of its own, and what must be one for the process is one: the cache,
 * the rate limit, the per-client connection cap, the upstreams' meters, a reload, a drain.
 *
 * <p>Each client here is a socket of its own, so its source port differs: with 32 or more of them
 * the chance that the kernel's hash puts all on one lane is below 2^-31.
 */
class LanesTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued CERT = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1"));
    private static final int CLIENTS = 48;

    @Test
    void everyLaneServesUdpAndTcpOverConnectionsOfItsOwn() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).poolSize(1).lanes(2).start()) {
            assertTrue(Eventually.holds(Duration.ofSeconds(5), Duration.ofMillis(20),
                    () -> upstream.connectionsAccepted() == 2), "each lane connects ahead to the upstream");
            for (int i = 0; i < CLIENTS; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("u" + i + ".example.")).getRcode());
            }
            for (int i = 0; i < 16; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.tcp(proxy.port(), DnsClient.query("t" + i + ".example.")).getRcode());
            }
            assertEquals(2, new HashSet<>(upstream.queryConnections()).size(),
                    "queries came over both lanes' connections (one each: pool size 1)");
            assertEquals(2, upstream.connectionsAccepted(), "no lane borrowed another's connection");
            assertEquals(CLIENTS + 16, proxy.count("dotproxy.upstream.requests", "upstream",
                    "127.0.0.1:" + upstream.port() + "#" + ProxyHarness.TLS_NAME, "result", "answered"),
                    "one set of meters per upstream counts every lane's answers");
            assertEquals(CLIENTS, proxy.count("dotproxy.server.queries", "proto", "udp"));

            proxy.drain();

            assertFalse(proxy.server().isServing(), "every lane's listeners closed");
            assertEquals(null, DnsClient.udpRaw(proxy.port(), DnsClient.query("after.example.").toWire(), 300));
        }
    }

    @Test
    void theLanesShareOneCache() throws Exception {
        ResponseCache.Settings cache = new ResponseCache.Settings(true, 1 << 20, Duration.ZERO, Duration.ofDays(1),
                Duration.ofHours(1), Duration.ZERO, Duration.ofMillis(1800), 0);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).cache(cache).lanes(2).start()) {
            for (int i = 0; i < CLIENTS; i++) {
                Message answer = DnsClient.udp(proxy.port(), DnsClient.query("shared.example."));
                assertEquals(Rcode.NOERROR, answer.getRcode());
            }
            assertEquals(1, upstream.queries().size(), "asked once upstream, answered from the cache on every lane after");
            assertEquals(CLIENTS - 1, proxy.count("dotproxy.cache.hits"));
        }
    }

    @Test
    void aClientGetsOneRateLimitWhateverLaneItsQueriesReach() throws Exception {
        // 5 at once, then one token every 1,000 s; no slip, no block: over the limit is dropped.
        RateLimiter.Settings limit = new RateLimiter.Settings(0.001, 5, Duration.ZERO, Duration.ZERO, 0, 32, 64, 1000);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).rateLimit(limit).lanes(2).start()) {
            List<DatagramSocket> clients = new ArrayList<>();
            try {
                for (int i = 0; i < CLIENTS; i++) {
                    DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                    socket.setSoTimeout(100);
                    clients.add(socket);
                    byte[] query = DnsClient.query("r" + i + ".example.").toWire();
                    socket.send(new DatagramPacket(query, query.length, InetAddress.getLoopbackAddress(), proxy.port()));
                }
                int answered = 0;
                for (DatagramSocket socket : clients) {
                    if (DnsClient.receive(socket) != null) {
                        answered++;
                    }
                }
                assertEquals(5, answered, "one bucket for 127.0.0.1 over both lanes (two would let 10 through)");
                assertEquals(5, upstream.queries().size());
            } finally {
                clients.forEach(DatagramSocket::close);
            }
        }
    }

    @Test
    void thePerClientConnectionCapHoldsAcrossLanes() throws Exception {
        TcpListener.Settings tcp = new TcpListener.Settings(Duration.ofSeconds(5), 100, 3, Duration.ofSeconds(5), 0,
                Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).tcp(tcp).lanes(2).start()) {
            List<DnsClient.Tcp> connections = new ArrayList<>();
            try {
                for (int i = 0; i < 12; i++) {
                    connections.add(new DnsClient.Tcp(proxy.port()));
                }
                int served = 0;
                for (int i = 0; i < connections.size(); i++) {
                    DnsClient.Tcp connection = connections.get(i);
                    try {
                        connection.send(DnsClient.query("c" + i + ".example.").toWire());
                        if (connection.receive() != null) {
                            served++;
                        }
                    } catch (IOException closedByTheProxy) {
                        // a connection over the cap was closed on accept
                    }
                }
                assertEquals(3, served, "3 connections from 127.0.0.1 in all, not 3 per lane");
            } finally {
                for (DnsClient.Tcp connection : connections) {
                    connection.close();
                }
            }
        }
    }

    @Test
    void aReloadReachesEveryLane() throws Exception {
        try (FakeUpstream first = FakeUpstream.start(CERT, FakeUpstream.answering());
             FakeUpstream second = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(first).lanes(2).start()) {
            ProxySettings settings = proxy.settings();
            ProxySettings.Forwarding forwarding = settings.forwarding();
            DotResolver moved = new DotResolver(UpstreamAddress.parse(
                    "127.0.0.1:" + second.port() + "#" + ProxyHarness.TLS_NAME, 853), Set.of());
            proxy.apply(new ProxySettings(settings.listen(), settings.guard(), settings.pipeline(), settings.cache(),
                    new ProxySettings.Forwarding(List.of(moved), forwarding.policy(), forwarding.fallback(),
                            forwarding.fallbackMaxInFlight(), forwarding.caFile(), forwarding.connections(),
                            forwarding.group(), forwarding.probing())));

            for (int i = 0; i < CLIENTS; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("m" + i + ".example.")).getRcode());
            }
            assertEquals(0, first.queries().size(), "no lane still sends to the removed resolver");
            assertEquals(CLIENTS, second.queries().size());

            ProxySettings moved2 = proxy.settings();
            Guard.Settings guard = moved2.guard();
            proxy.apply(new ProxySettings(moved2.listen(), new Guard.Settings(AddressSet.parse(List.of("10.0.0.0/8")),
                    guard.dropRefusedUdp(), guard.rateLimit(), guard.exempt()), moved2.pipeline(), moved2.cache(),
                    moved2.forwarding()));

            for (int i = 0; i < CLIENTS; i++) {
                assertEquals(Rcode.REFUSED, DnsClient.udp(proxy.port(), DnsClient.query("g" + i + ".example.")).getRcode(),
                        "every lane's guard is the new one");
            }
            assertEquals(CLIENTS, second.queries().size(), "refused queries never reach the upstream");
        }
    }

    @Test
    void aCircuitOpenedOnOneLaneTakesTheUpstreamOutOfEveryLane() throws Exception {
        FakeUpstream.Behaviour silent = (query, connection) -> new FakeUpstream.Silence();
        try (FakeUpstream dead = FakeUpstream.start(CERT, silent);
             FakeUpstream alive = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(dead).upstream(alive).policy("failover")
                     .attemptTimeout(Duration.ofMillis(300)).firstBackOff(Duration.ofMinutes(5)).lanes(2).start();
             DatagramSocket client = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            client.setSoTimeout(2000);
            for (int i = 0; i < 3; i++) { // one client, so one lane: three timeouts open the circuit
                byte[] query = DnsClient.query("t" + i + ".example.").toWire();
                client.send(new DatagramPacket(query, query.length, InetAddress.getLoopbackAddress(), proxy.port()));
                assertEquals(Rcode.NOERROR, new Message(DnsClient.receive(client)).getRcode(), "the second upstream answers");
            }
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(10),
                    () -> proxy.gauge("dotproxy.upstream.state", "upstream", "127.0.0.1:" + dead.port() + "#"
                            + ProxyHarness.TLS_NAME, "state", "down") == 1), "the circuit is open");

            for (int i = 0; i < CLIENTS; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("after" + i + ".example.")).getRcode());
            }
            assertEquals(3, dead.queries().size(), "no lane tried the upstream whose circuit is open");
            assertEquals(3 + CLIENTS, alive.queries().size());
        }
    }

    @Test
    void moreLanesThanTheHandshakeBurstStillEachConnect() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).poolSize(1).handshakeBudget(4, 1)
                     .lanes(6).start()) {
            assertTrue(Eventually.holds(Duration.ofSeconds(5), Duration.ofMillis(20),
                    () -> upstream.connectionsAccepted() == 6), "every lane connects ahead, the burst notwithstanding");
            for (int i = 0; i < CLIENTS; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("l" + i + ".example.")).getRcode());
            }
            assertEquals(0, proxy.count("dotproxy.server.errors", "proto", "udp", "result", "upstream"));
        }
    }

    @Test
    void lanesDoNotJoinAPortThatAnotherSocketSharesWithReusePort() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(CERT, FakeUpstream.answering());
             DatagramChannel squatter = DatagramChannel.open(StandardProtocolFamily.INET)) {
            // What unbound does by default: the kernel would split the port's datagrams with it.
            squatter.setOption(StandardSocketOptions.SO_REUSEPORT, true);
            squatter.bind(new InetSocketAddress("127.0.0.1", 0));
            int taken = ((InetSocketAddress) squatter.getLocalAddress()).getPort();

            UncheckedIOException refused = assertThrows(UncheckedIOException.class,
                    () -> ProxyHarness.builder(CA).upstream(upstream).port(taken).lanes(2).start());

            assertTrue(refused.getMessage().contains("cannot listen on 127.0.0.1 port " + taken), refused.getMessage());
        }
    }
}
