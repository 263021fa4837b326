package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * The response cache end to end: the packaged proxy in front of Debian's unbound as a DoT
 * resolver, whose own statistics ({@code unbound-control stats_noreset}, {@code total.num.queries})
 * count what really reached it. Many identical client queries, at once (coalesced) or one after
 * another (cache hits), over UDP and TCP, reach unbound once; a cached answer's TTL falls with the
 * time spent in the cache; the proxy's cache meters agree with unbound's count; and with the cache
 * off every query reaches unbound, which shows that the count is real.
 *
 * <p>Each test asks for a name of its own, so the cache entries of one test never serve another;
 * counts are taken as differences around each test, the tests running one after another.
 */
class CacheAgainstUnboundIT {
    /** Identical queries per round. */
    private static final int REPEATS = 200;
    /** Concurrent rounds: this many clients, each sending its share at once. */
    private static final int CLIENTS = 4;
    /** Every name of the zone below has this TTL: nothing expires, nothing is prefetched during the test. */
    private static final long TTL = 3600;
    private static final String ADDRESS = "192.0.2.1";
    private static final List<String> NAMES = List.of("udp-at-once.test.", "tcp-at-once.test.",
            "udp-one-by-one.test.", "tcp-one-by-one.test.", "ttl.test.", "uncached.test.");

    private static Path dir;
    private static Path caFile;
    private static UnboundServer unbound;
    private static ProxyProcess proxy;
    private static int dnsPort;
    private static int httpPort;

    @BeforeAll
    static void start() throws Exception {
        dir = Files.createTempDirectory("dot-proxy-cache");
        TestCa ca = TestCa.create();
        caFile = ca.writePem(dir.resolve("ca.pem"));
        List<String> records = NAMES.stream().map(name -> name + " " + TTL + " IN A " + ADDRESS).toList();
        // TCP_NODELAY on unbound's side: else each answer of the uncached runs waits ~40 ms for a delayed ACK.
        unbound = UnboundServer.start(ca, dir, DigAgainstUnboundIT.freePort(),
                new UnboundServer.Options(true, true, records));
        dnsPort = DigAgainstUnboundIT.freePort();
        httpPort = DigAgainstUnboundIT.freePort();
        // The cache is on by default; two lanes, as on a 2-CPU node, so that queries at once meet on both.
        proxy = ProxyProcess.start(dir, properties(dnsPort, httpPort, Map.of("dotproxy.event-loops", String.valueOf(LANES))),
                Map.of());
        proxy.awaitReady(httpPort);
        // Readiness can come a moment before Quarkus has exported every meter: a scrape right
        // after it was seen to lack some (dotproxy_cache_misses_total among them), a later one not.
        List<String> meters = List.of("dotproxy_cache_hits_total ", "dotproxy_cache_misses_total ",
                "dotproxy_cache_coalesced_total ");
        assertTrue(Eventually.holds(Duration.ofSeconds(15), Duration.ofMillis(100), () -> {
            String metrics = get(httpPort, "/q/metrics");
            return meters.stream().allMatch(meter -> metrics.lines().anyMatch(line -> line.startsWith(meter)));
        }), "the cache meters are scraped: " + get(httpPort, "/q/metrics"));
    }

    @AfterAll
    static void stop() throws Exception {
        if (proxy != null) {
            proxy.close();
        }
        if (unbound != null) {
            unbound.close();
        }
    }

    private static Map<String, String> properties(int dns, int http, Map<String, String> more) {
        Map<String, String> properties = new HashMap<>(Map.of(
                "dotproxy.listen.host", "127.0.0.1",
                "dotproxy.listen.port", String.valueOf(dns),
                "dotproxy.upstreams", "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME,
                "dotproxy.tls.ca-file", caFile.toString(),
                "quarkus.http.port", String.valueOf(http),
                "quarkus.http.host", "127.0.0.1"));
        properties.putAll(more);
        return properties;
    }

    /** Lanes of the proxy under test: identical queries in flight at once are coalesced within each. */
    private static final int LANES = 2;

    @Test
    void identicalUdpQueriesAtOnceReachUnboundOncePerLane() throws Exception {
        State before = state();
        List<Message> answers = udpAtOnce(dnsPort, "udp-at-once.test.", REPEATS / CLIENTS);
        State after = state();
        assertAnswered(answers, "udp-at-once.test.", REPEATS);
        assertAtMostOneUpstreamQueryPerLane(REPEATS, before, after);
    }

    @Test
    void identicalTcpQueriesAtOnceAreCoalescedAndReachUnboundOncePerLane() throws Exception {
        State before = state();
        List<Message> answers = tcpAtOnce(dnsPort, "tcp-at-once.test.", REPEATS / CLIENTS);
        State after = state();
        assertAnswered(answers, "tcp-at-once.test.", REPEATS);
        assertAtMostOneUpstreamQueryPerLane(REPEATS, before, after);
        // Each client's queries arrive in one segment and are read in one go, before unbound can
        // have answered the first of them: those after it wait for its answer.
        assertTrue(after.coalesced() - before.coalesced() >= 1, "none coalesced: " + before + " -> " + after);
    }

    @Test
    void identicalUdpQueriesOneByOneAreCacheHits() throws Exception {
        State before = state();
        List<Message> answers = udpOneByOne(dnsPort, "udp-one-by-one.test.", REPEATS);
        State after = state();
        assertAnswered(answers, "udp-one-by-one.test.", REPEATS);
        assertAtMostOneUpstreamQueryPerLane(REPEATS, before, after);
        assertEquals(REPEATS - 1, after.hits() - before.hits(), before + " -> " + after);
        assertEquals(1, after.misses() - before.misses(), before + " -> " + after);
        assertEquals(0, after.coalesced() - before.coalesced(), before + " -> " + after);
    }

    @Test
    void identicalTcpQueriesOneByOneAreCacheHitsWhateverTheNamesCase() throws Exception {
        State before = state();
        List<Message> answers = new ArrayList<>();
        try (DnsClient.Tcp connection = new DnsClient.Tcp(dnsPort)) {
            for (int i = 0; i < REPEATS; i++) {
                String spelling = mixedCase("tcp-one-by-one.test.", i);
                Message query = query(spelling, i);
                connection.send(query.toWire());
                Message answer = new Message(connection.receive());
                assertEquals(i, answer.getHeader().getID());
                // The cached answer echoes the client's own spelling of the name (0x20 clients check it).
                assertEquals(spelling, answer.getQuestion().getName().toString(), "query " + i);
                answers.add(answer);
            }
        }
        State after = state();
        assertAnswered(answers, "tcp-one-by-one.test.", REPEATS);
        assertAtMostOneUpstreamQueryPerLane(REPEATS, before, after);
        assertEquals(REPEATS - 1, after.hits() - before.hits(), before + " -> " + after);
        assertEquals(1, after.misses() - before.misses(), before + " -> " + after);
    }

    @Test
    void aCachedAnswersTtlFallsWithTheTimeItSpentInTheCache() throws Exception {
        State before = state();
        long firstSent = System.nanoTime();
        Message first = DnsClient.udp(dnsPort, query("ttl.test.", 1));
        long firstReceived = System.nanoTime();
        Thread.sleep(2000);
        long secondSent = System.nanoTime();
        Message second = DnsClient.udp(dnsPort, query("ttl.test.", 2));
        long secondReceived = System.nanoTime();
        State after = state();
        assertAnswered(List.of(first, second), "ttl.test.", 2);

        assertEquals(TTL, ttl(first), "the first answer is unbound's, as unbound gave it: " + first);
        long aged = ttl(second);
        assertTrue(aged >= TTL - 4 && aged <= TTL - 1, "after ~2 s in the cache: " + second);
        // The entry was stored between the first query's sending and its answer's arrival, and
        // aged when the second was answered, in whole seconds: the TTL fell by no less than the
        // shortest interval, and by no more than the longest.
        long shortest = TimeUnit.NANOSECONDS.toSeconds(secondSent - firstReceived);
        long longest = TimeUnit.NANOSECONDS.toSeconds(secondReceived - firstSent);
        assertTrue(TTL - aged >= shortest && TTL - aged <= longest,
                "fell by " + (TTL - aged) + " s, between " + shortest + " and " + longest + " s expected");
        assertAtMostOneUpstreamQueryPerLane(2, before, after);
        assertEquals(1, after.hits() - before.hits(), before + " -> " + after);
    }

    /** The counter is real: with the cache off, the same rounds send every query to unbound. */
    @Test
    void withTheCacheOffEveryQueryReachesUnbound() throws Exception {
        int dns = DigAgainstUnboundIT.freePort();
        int http = DigAgainstUnboundIT.freePort();
        try (ProxyProcess uncached = ProxyProcess.start(dir,
                properties(dns, http, Map.of("dotproxy.cache.enabled", "false")), Map.of())) {
            uncached.awaitReady(http);
            long before = unbound.queries();
            List<Message> answers = new ArrayList<>(udpOneByOne(dns, "uncached.test.", REPEATS));
            long afterOneByOne = unbound.queries();
            // At once: within what one upstream connection takes in flight (dotproxy.upstream.max-in-flight).
            answers.addAll(tcpAtOnce(dns, "uncached.test.", 25));
            long afterAtOnce = unbound.queries();
            assertAnswered(answers, "uncached.test.", REPEATS + CLIENTS * 25);
            assertEquals(REPEATS, afterOneByOne - before, "one by one, uncached");
            assertEquals(CLIENTS * 25, afterAtOnce - afterOneByOne, "at once, uncached");
            String metrics = get(http, "/q/metrics");
            assertFalse(metrics.contains("dotproxy_cache_hits_total"), "no cache, no cache meters: " + metrics);
            System.out.printf("cache off: %d queries one by one and %d at once sent, unbound counted %d and %d%n",
                    REPEATS, CLIENTS * 25, afterOneByOne - before, afterAtOnce - afterOneByOne);
        }
    }

    // --- what the proxy and unbound counted ---

    /** Unbound's count of queries received, and the proxy's cache meters, at one moment. */
    private record State(long unbound, long hits, long misses, long coalesced) {}

    private static State state() throws Exception {
        String metrics = get(httpPort, "/q/metrics");
        return new State(unbound.queries(), sample(metrics, "dotproxy_cache_hits_total"),
                sample(metrics, "dotproxy_cache_misses_total"), sample(metrics, "dotproxy_cache_coalesced_total"));
    }

    /**
     * {@code sent} identical queries for a name no one asked before: unbound saw one from each lane
     * they reached at most (each lane coalesces its own queries in flight, as each unbound thread
     * does, and the cache they share answers the rest), and the proxy's meters account for every
     * query: each was a hit or a miss, and each miss either joined a query in flight (coalesced) or
     * was one of those queries to unbound.
     */
    private static void assertAtMostOneUpstreamQueryPerLane(int sent, State before, State after) {
        long upstream = after.unbound() - before.unbound();
        long hits = after.hits() - before.hits();
        long misses = after.misses() - before.misses();
        long coalesced = after.coalesced() - before.coalesced();
        String numbers = sent + " sent, unbound counted " + upstream + "; hits " + hits + ", misses " + misses
                + ", coalesced " + coalesced;
        System.out.println(numbers);
        assertTrue(upstream >= 1 && upstream <= LANES, numbers);
        assertEquals(sent, hits + misses, numbers);
        assertEquals(upstream, misses - coalesced, numbers);
    }

    /** Every query answered NOERROR with the zone's one address for {@code name}, as many as expected. */
    private static void assertAnswered(List<Message> answers, String name, int expected) throws IOException {
        assertEquals(expected, answers.size(), "answers");
        Name asked = Name.fromString(name);
        for (Message answer : answers) {
            assertTrue(answer.getHeader().getFlag(Flags.QR), answer::toString);
            assertEquals(Rcode.NOERROR, answer.getRcode(), answer::toString);
            assertEquals(asked, answer.getQuestion().getName(), answer::toString); // case-insensitively
            List<Record> records = answer.getSection(Section.ANSWER);
            assertEquals(1, records.size(), answer::toString);
            assertEquals(InetAddress.getByName(ADDRESS), ((ARecord) records.get(0)).getAddress(), answer::toString);
        }
    }

    private static long ttl(Message answer) {
        return answer.getSection(Section.ANSWER).get(0).getTTL();
    }

    /** The value of one untagged Prometheus sample; it must be there. */
    private static long sample(String metrics, String name) {
        String value = metrics.lines().filter(line -> line.startsWith(name + " ")).findFirst()
                .map(line -> line.substring(name.length() + 1).trim()).orElse(null);
        assertNotNull(value, name + " in " + metrics);
        return (long) Double.parseDouble(value);
    }

    private static String get(int port, String path) throws Exception {
        HttpResponse<String> response = HttpClient.newHttpClient().send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, response.statusCode(), path);
        return response.body();
    }

    // --- clients ---

    private static Message query(String name, int id) throws IOException {
        Message query = Message.newQuery(Record.newRecord(Name.fromString(name), Type.A, DClass.IN));
        query.getHeader().setID(id); // distinct IDs per client: random ones could collide among 200
        return query;
    }

    /** {@code name} with the case of its letters chosen by the bits of {@code i}. */
    private static String mixedCase(String name, int i) {
        StringBuilder spelled = new StringBuilder(name);
        for (int c = 0; c < spelled.length(); c++) {
            if (Character.isLetter(spelled.charAt(c)) && ((i >> (c % 8)) & 1) == 1) {
                spelled.setCharAt(c, Character.toUpperCase(spelled.charAt(c)));
            }
        }
        return spelled.toString();
    }

    /** {@code count} queries over UDP from one socket, each sent once its predecessor was answered. */
    private static List<Message> udpOneByOne(int port, String name, int count) throws IOException {
        List<Message> answers = new ArrayList<>();
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            socket.setSoTimeout(5000);
            for (int i = 0; i < count; i++) {
                send(socket, port, query(name, i));
                Message answer = receive(socket);
                assertEquals(i, answer.getHeader().getID());
                answers.add(answer);
            }
        }
        return answers;
    }

    /**
     * {@link #CLIENTS} UDP clients, released together, each sending {@code each} queries back to
     * back and only then reading the answers; no query is sent twice.
     */
    private static List<Message> udpAtOnce(int port, String name, int each) throws Exception {
        return atOnce(gate -> {
            try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
                socket.setSoTimeout(5000);
                List<Message> queries = new ArrayList<>();
                for (int i = 0; i < each; i++) {
                    queries.add(query(name, i));
                }
                gate.await();
                for (Message query : queries) {
                    send(socket, port, query);
                }
                List<Message> answers = new ArrayList<>();
                boolean[] seen = new boolean[each];
                while (answers.size() < each) {
                    Message answer = receive(socket);
                    int id = answer.getHeader().getID();
                    assertTrue(id < each && !seen[id], "one answer per query: " + answer);
                    seen[id] = true;
                    answers.add(answer);
                }
                return answers;
            }
        });
    }

    /**
     * {@link #CLIENTS} TCP clients, released together, each writing {@code each} queries in one
     * write on its own connection (pipelined, RFC 7766 §6.2.1.1), then reading the answers.
     */
    private static List<Message> tcpAtOnce(int port, String name, int each) throws Exception {
        return atOnce(gate -> {
            try (DnsClient.Tcp connection = new DnsClient.Tcp(port)) {
                ByteArrayOutputStream frames = new ByteArrayOutputStream();
                DataOutputStream out = new DataOutputStream(frames);
                for (int i = 0; i < each; i++) {
                    byte[] wire = query(name, i).toWire();
                    out.writeShort(wire.length);
                    out.write(wire);
                }
                gate.await();
                connection.socket().getOutputStream().write(frames.toByteArray());
                connection.socket().getOutputStream().flush();
                List<Message> answers = new ArrayList<>();
                boolean[] seen = new boolean[each];
                while (answers.size() < each) {
                    Message answer = new Message(connection.receive());
                    int id = answer.getHeader().getID();
                    assertTrue(id < each && !seen[id], "one answer per query: " + answer);
                    seen[id] = true;
                    answers.add(answer);
                }
                return answers;
            }
        });
    }

    private interface Client {
        List<Message> run(CountDownLatch gate) throws Exception;
    }

    /** Runs {@link #CLIENTS} clients on their own threads, released by one gate; all their answers. */
    private static List<Message> atOnce(Client client) throws Exception {
        ExecutorService threads = Executors.newFixedThreadPool(CLIENTS);
        try {
            CountDownLatch gate = new CountDownLatch(1);
            List<Future<List<Message>>> results = new ArrayList<>();
            for (int c = 0; c < CLIENTS; c++) {
                Callable<List<Message>> task = () -> client.run(gate);
                results.add(threads.submit(task));
            }
            Thread.sleep(100); // every client ready at the gate: its socket open, its queries built
            gate.countDown();
            List<Message> answers = new ArrayList<>();
            for (Future<List<Message>> result : results) {
                answers.addAll(result.get(30, TimeUnit.SECONDS));
            }
            return answers;
        } finally {
            threads.shutdownNow();
        }
    }

    private static void send(DatagramSocket socket, int port, Message query) throws IOException {
        byte[] wire = query.toWire();
        socket.send(new DatagramPacket(wire, wire.length, InetAddress.getLoopbackAddress(), port));
    }

    private static Message receive(DatagramSocket socket) throws IOException {
        byte[] buffer = new byte[1232];
        DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
        try {
            socket.receive(packet);
        } catch (SocketTimeoutException e) {
            throw new SocketTimeoutException("no UDP answer within 5 s");
        }
        return new Message(Arrays.copyOf(buffer, packet.getLength()));
    }
}
