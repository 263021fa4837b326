package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
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
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Type;

/**
 * The reload soak: 50 reloads of a kubelet-style mounted settings file, alternating the upstream
 * between two real resolvers (each reload replaces every member: connect the new one, retire the
 * old), under a steady load over UDP and over one long-lived TCP connection. Not one query fails;
 * once the retired members' deadlines have passed, the proxy holds as many upstream connections,
 * file descriptors and live upstream objects as before the soak, and its RSS does not grow.
 */
class ReloadSoakIT {
    private static final int RELOADS = 50;
    /** The image's heap flags: a small fixed heap, so that RSS shows native growth, not heap sizing. */
    private static final List<String> JVM = List.of("-XX:+UseSerialGC", "-Xms16m", "-Xmx32m",
            "-XX:MaxDirectMemorySize=32m", "-XX:ReservedCodeCacheSize=32m", "-XX:MaxMetaspaceSize=64m");
    /** Lanes: each reload replaces every lane's member; a lane the load does not reach may let its connection go idle. */
    private static final int LANES = 2;
    /** The query deadline set below, plus the second a retired member waits beyond it, plus margin. */
    private static final Duration RETIREMENT = Duration.ofSeconds(2 + 1 + 2);



    private static String settings(UnboundServer upstream, Path caFile) {
        return ReloadIT.settings(upstream, caFile) + "dotproxy.timeout=2s\n";
    }

    @Test
    void fiftyReloadsUnderLoadFailNoQueryAndLeakNothing() throws Exception {
        Path dir = Files.createTempDirectory("dot-proxy-soak");
        TestCa ca = TestCa.create();
        Path caFile = ca.writePem(dir.resolve("ca.pem"));
        UnboundServer.Options counting = new UnboundServer.Options(true, true, List.of());
        int dns = DigAgainstUnboundIT.freePort();
        int http = DigAgainstUnboundIT.freePort();
        try (UnboundServer a = UnboundServer.start(ca, Files.createDirectory(dir.resolve("a")), DigAgainstUnboundIT.freePort(), counting);
             UnboundServer b = UnboundServer.start(ca, Files.createDirectory(dir.resolve("b")), DigAgainstUnboundIT.freePort(), counting)) {
            UnboundServer[] resolvers = {a, b};
            ConfigMapMount mount = ConfigMapMount.create(dir, settings(a, caFile));
            Path file = mount.file();
            try (ProxyProcess proxy = ProxyProcess.start(dir, JVM, Map.of(
                    "dotproxy.listen.host", "127.0.0.1",
                    "dotproxy.listen.port", String.valueOf(dns),
                    "quarkus.http.port", String.valueOf(http),
                    "quarkus.http.host", "127.0.0.1",
                    "dotproxy.event-loops", String.valueOf(LANES)), Map.of("DOTPROXY_CONFIG_FILE", file.toString()))) {
                proxy.awaitReady(http);
                Set<Integer> upstreamPorts = Set.of(a.port(), b.port());
                // Two reloads before the baseline: what the first reload creates once (classes, JIT code) is not a leak.
                int generation = 1;
                for (int i = 0; i < 2; i++) {
                    mount.publish(settings(resolvers[(i + 1) % 2], caFile));
                    awaitGeneration(http, ++generation, proxy);
                }
                long queriesBefore = a.queries() + b.queries(); // read while nothing is asked
                Load load = Load.start(dns);
                Thread.sleep(RETIREMENT.toMillis());
                Footprint before = Footprint.of(proxy.pid(), upstreamPorts);

                List<Long> rss = new ArrayList<>();
                for (int i = 0; i < RELOADS; i++) {
                    mount.publish(settings(resolvers[(i + 1) % 2], caFile)); // b, a, b, ...: the warm-up ended on a
                    awaitGeneration(http, ++generation, proxy);
                    Thread.sleep(150); // queries flow through each new group
                    if (i % 10 == 9) {
                        rss.add(Footprint.rssKib(proxy.pid()));
                    }
                }
                Thread.sleep(RETIREMENT.toMillis());
                Footprint after = Footprint.of(proxy.pid(), upstreamPorts);
                Map<String, Long> live = liveObjects(proxy.pid());
                Load.Outcome outcome = load.stop();

                assertEquals(0, outcome.failed(), "no query lost, SERVFAIL or mismatched: " + outcome);
                assertTrue(outcome.answered() > 2000, "the load ran throughout: " + outcome);
                assertEquals(outcome.answered(), a.queries() + b.queries() - queriesBefore,
                        "each query answered reached one resolver once: " + get(http, "/q/metrics").lines()
                                .filter(l -> l.startsWith("dotproxy_upstream") || l.startsWith("dotproxy_server_responses")).toList());
                assertTrue(before.upstreamConnections() > 0, "the baseline sees the connection in use: " + before);
                // No more than at the baseline (a leak would add a retired member's); fewer when a lane
                // no query reached let its connection idle out.
                assertTrue(after.upstreamConnections() >= 1 && after.upstreamConnections() <= before.upstreamConnections(),
                        "connections to the resolvers back to the baseline: " + before + " / " + after);
                // Sockets, pipes, epoll and event descriptors exactly as before; files may differ, as the
                // class loader opens a library's jar when it first needs a class from it.
                // (One fewer is not a leak: at the baseline a connection can still be closing.)
                assertTrue(after.nonFiles() <= before.nonFiles(),
                        "file descriptors back to the baseline, those that differ: " + before.differences(after));
                assertEquals((long) LANES, live.get("DotUpstream"), "one resolver in force per lane, every retired one collected: " + live);
                assertEquals((long) LANES, live.get("Member"), live.toString());
                long connections = live.getOrDefault("DotConnection", 0L);
                assertTrue(connections >= 1 && connections <= 2 * LANES, "one in use per lane, maybe one opening: " + live);
                // RSS flat: the last 30 reloads add no more than noise (a leak of one member's ID table per
                // reload alone would add 256 KiB each, 7.5 MiB over them).
                long growth = rss.get(rss.size() - 1) - rss.get(1);
                assertTrue(growth < 6 * 1024, "RSS grows with reloads: " + rss + " KiB");
                System.out.printf("reload soak: %s; before %s, after %s; RSS every 10 reloads %s KiB; live %s%n",
                        outcome, before, after, rss, live);
            }
        }
    }

    private static void awaitGeneration(int http, int generation, ProxyProcess proxy) throws Exception {
        String expected = "\"settings-generation\": " + generation;
        assertTrue(Eventually.holds(Duration.ofSeconds(20), Duration.ofMillis(20), () -> get(http, "/q/health/ready").contains(expected)),
                "generation " + generation + " not reached: " + proxy.output());
    }

    /** Live instances of the upstream classes, counted by jcmd after a full collection. */
    private static Map<String, Long> liveObjects(long pid) throws Exception {
        Process jcmd = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "jcmd").toString(),
                String.valueOf(pid), "GC.class_histogram").redirectErrorStream(true).start();
        String histogram = new String(jcmd.getInputStream().readAllBytes());
        assertTrue(jcmd.waitFor(60, TimeUnit.SECONDS) && jcmd.exitValue() == 0, histogram);
        Map<String, Long> counts = new java.util.TreeMap<>();
        Matcher line = Pattern.compile("(?m)^\\s*\\d+:\\s+(\\d+)\\s+\\d+\\s+io\\.dotproxy\\.upstream\\.(DotUpstream|DotConnection|Member)$")
                .matcher(histogram);
        while (line.find()) {
            counts.put(line.group(2), Long.parseLong(line.group(1)));
        }
        return counts;
    }

    /** One client, so one kept-alive connection to the proxy's HTTP port, not a new socket per poll. */
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    private static String get(int port, String path) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString()).body();
    }

    /** What the proxy process holds: its connections to the resolvers, its file descriptors. */
    /**
     * @param kinds the file descriptors by what they are: a socket, a pipe, an epoll instance, a file
     */
    private record Footprint(int upstreamConnections, int fileDescriptors, Map<String, Integer> kinds) {
        static Footprint of(long pid, Set<Integer> upstreamPorts) throws IOException {
            Set<String> sockets = new HashSet<>();
            Map<String, Integer> kinds = new java.util.TreeMap<>();
            int descriptors = 0;
            try (Stream<Path> fds = Files.list(Path.of("/proc", String.valueOf(pid), "fd"))) {
                for (Path fd : fds.toList()) {
                    descriptors++;
                    try {
                        String target = Files.readSymbolicLink(fd).toString();
                        if (target.startsWith("socket:[")) {
                            sockets.add(target.substring(8, target.length() - 1));
                        }
                        kinds.merge(target.replaceAll("\\[\\d+]$", ""), 1, Integer::sum);
                    } catch (IOException closedMeanwhile) {
                        // gone between the listing and the read
                    }
                }
            }
            // /proc/net/tcp and tcp6 (Netty's sockets are dual-stack): "sl local rem st ... inode";
            // ESTABLISHED is state 01, ports in hex.
            int connections = 0;
            for (String table : List.of("tcp", "tcp6")) {
                for (String row : Files.readAllLines(Path.of("/proc", String.valueOf(pid), "net", table))) {
                    String[] f = row.trim().split("\\s+");
                    if (f.length > 9 && f[3].equals("01") && sockets.contains(f[9])
                            && upstreamPorts.contains(Integer.parseInt(f[2].substring(f[2].indexOf(':') + 1), 16))) {
                        connections++;
                    }
                }
            }
            return new Footprint(connections, descriptors, kinds);
        }

        /** Descriptors that are not files on disk: sockets, pipes, epoll and event descriptors. */
        int nonFiles() {
            return kinds.entrySet().stream().filter(kind -> !kind.getKey().startsWith("/"))
                    .mapToInt(Map.Entry::getValue).sum();
        }

        /** The kinds of descriptors whose counts differ in {@code other}, with both counts. */
        Map<String, String> differences(Footprint other) {
            Map<String, String> differ = new java.util.TreeMap<>();
            Set<String> all = new HashSet<>(kinds.keySet());
            all.addAll(other.kinds.keySet());
            for (String kind : all) {
                int mine = kinds.getOrDefault(kind, 0);
                int theirs = other.kinds.getOrDefault(kind, 0);
                if (mine != theirs) {
                    differ.put(kind, mine + " -> " + theirs);
                }
            }
            return differ;
        }

        @Override
        public String toString() {
            return upstreamConnections + " upstream connections, " + fileDescriptors + " descriptors";
        }

        static long rssKib(long pid) throws IOException {
            for (String row : Files.readAllLines(Path.of("/proc", String.valueOf(pid), "status"))) {
                if (row.startsWith("VmRSS:")) {
                    return Long.parseLong(row.replaceAll("[^0-9]", ""));
                }
            }
            throw new IOException("no VmRSS for " + pid);
        }
    }

    /**
     * A steady load: one UDP client at about 150 q/s and one TCP connection at about 50 q/s, every
     * query a new name (NXDOMAIN from the resolvers' static zone); each waits for its answer (two seconds) before the next. Bounded: it stops
     * when told, or after two minutes.
     */
    private static final class Load {
        private static final long UDP_PACE_NANOS = TimeUnit.MILLISECONDS.toNanos(7);
        private static final long TCP_PACE_NANOS = TimeUnit.MILLISECONDS.toNanos(20);
        private static final long MOST_NANOS = TimeUnit.MINUTES.toNanos(2);

        record Outcome(long answered, long lost, long servfail, long other) {
            long failed() {
                return lost + servfail + other;
            }
        }

        private final AtomicBoolean stop = new AtomicBoolean();
        private final long[] udp = new long[4]; // answered, lost, SERVFAIL, another rcode than NXDOMAIN; each written by its own thread
        private final long[] tcp = new long[4];
        private final CompletableFuture<Void> udpRun;
        private final CompletableFuture<Void> tcpRun;

        private Load(int port) {
            udpRun = CompletableFuture.runAsync(() -> run(() -> udp(port)));
            tcpRun = CompletableFuture.runAsync(() -> run(() -> tcp(port)));
        }

        static Load start(int port) {
            return new Load(port);
        }

        private interface Body {
            void run() throws Exception;
        }

        private static void run(Body body) {
            try {
                body.run();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }

        Outcome stop() throws Exception {
            stop.set(true);
            udpRun.get(30, TimeUnit.SECONDS);
            tcpRun.get(30, TimeUnit.SECONDS);
            synchronized (this) {
                return new Outcome(udp[0] + tcp[0], udp[1] + tcp[1], udp[2] + tcp[2], udp[3] + tcp[3]);
            }
        }

        private synchronized void count(long[] tally, Message answer) {
            if (answer == null) {
                tally[1]++;
            } else {
                tally[0]++;
                if (answer.getRcode() == Rcode.SERVFAIL) {
                    tally[2]++;
                } else if (answer.getRcode() != Rcode.NXDOMAIN) { // the resolvers' answer for every name asked
                    tally[3]++;
                }
            }
        }

        private static Message query(String transport, long i) throws Exception {
            return Message.newQuery(Record.newRecord(
                    Name.fromString(transport + i + "-" + System.nanoTime() + ".soak.test."), Type.A, DClass.IN));
        }

        private void udp(int port) throws Exception {
            long end = System.nanoTime() + MOST_NANOS;
            try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
                socket.setSoTimeout(2000);
                byte[] buffer = new byte[1232];
                long next = System.nanoTime();
                for (long i = 0; !stop.get() && System.nanoTime() < end; i++) {
                    Message query = query("u", i);
                    byte[] wire = query.toWire();
                    socket.send(new DatagramPacket(wire, wire.length, InetAddress.getLoopbackAddress(), port));
                    Message answer = null;
                    while (answer == null) {
                        DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
                        try {
                            socket.receive(packet);
                        } catch (SocketTimeoutException lost) {
                            break;
                        }
                        Message received = new Message(Arrays.copyOf(buffer, packet.getLength()));
                        if (received.getHeader().getID() == query.getHeader().getID()) {
                            answer = received; // a late answer to an earlier query is not this one's
                        }
                    }
                    count(udp, answer);
                    next = pace(next, UDP_PACE_NANOS);
                }
            }
        }

        private void tcp(int port) throws Exception {
            long end = System.nanoTime() + MOST_NANOS;
            // One connection for the whole soak: client connections outlive reloads.
            try (DnsClient.Tcp connection = new DnsClient.Tcp(port)) {
                long next = System.nanoTime();
                for (long i = 0; !stop.get() && System.nanoTime() < end; i++) {
                    Message query = query("t", i);
                    Message answer;
                    try {
                        connection.send(query.toWire());
                        answer = new Message(connection.receive());
                    } catch (IOException broken) {
                        count(tcp, null);
                        throw broken; // the connection is gone: a failure the assertions will show
                    }
                    count(tcp, answer.getHeader().getID() == query.getHeader().getID() ? answer : null);
                    next = pace(next, TCP_PACE_NANOS);
                }
            }
        }

        private static long pace(long next, long pace) throws InterruptedException {
            long due = next + pace;
            long wait = due - System.nanoTime();
            if (wait > 0) {
                TimeUnit.NANOSECONDS.sleep(wait);
            }
            return due;
        }
    }
}
