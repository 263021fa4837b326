package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Type;

/**
 * One loopback address floods the packaged proxy with dnsperf for a bounded time while another
 * asks at a normal rate: the flood is limited, then blocked, then served again once the block
 * expires; the normal client keeps getting its answers, about as fast as without the flood.
 */
class FloodIT {
    private static final String FLOODER = "127.0.0.5";
    private static final String NEIGHBOUR = "127.0.0.6";
    private static final int QPS = 100;
    private static final Duration BLOCK_TIME = Duration.ofSeconds(8); // outlasts the flood: still blocked when it ends
    private static final int FLOOD_SECONDS = 5;
    private static final int NEIGHBOUR_QUERIES = 250; // at 50 q/s: as long as the flood

    @Test
    void aFloodingClientIsLimitedAndBlockedWhileItsNeighbourIsServedAsUsual() throws Exception {
        Path dir = Files.createTempDirectory("dot-proxy-flood");
        TestCa ca = TestCa.create();
        Path caFile = ca.writePem(dir.resolve("ca.pem"));
        Path queries = Files.writeString(dir.resolve("queries.txt"), "a.test A\na.test AAAA\n");
        int dns = DigAgainstUnboundIT.freePort();
        int http = DigAgainstUnboundIT.freePort();
        try (UnboundServer unbound = UnboundServer.start(ca, dir, DigAgainstUnboundIT.freePort(), true);
             ProxyProcess proxy = ProxyProcess.start(dir, Map.ofEntries(
                     Map.entry("dotproxy.listen.host", "127.0.0.1"),
                     Map.entry("dotproxy.listen.port", String.valueOf(dns)),
                     Map.entry("dotproxy.upstreams", "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME),
                     Map.entry("dotproxy.tls.ca-file", caFile.toString()),
                     Map.entry("dotproxy.rate-limit.qps", String.valueOf(QPS)),
                     Map.entry("dotproxy.rate-limit.block-after", "1s"),
                     Map.entry("dotproxy.rate-limit.block-time", BLOCK_TIME.toSeconds() + "s"),
                     Map.entry("quarkus.http.port", String.valueOf(http)),
                     Map.entry("quarkus.http.host", "127.0.0.1")), Map.of())) {
            proxy.awaitReady(http);
            InetSocketAddress server = new InetSocketAddress("127.0.0.1", dns);
            ask(server, "127.0.0.7", NEIGHBOUR_QUERIES); // warm-up: JIT and connections, not measured
            Pace unloaded = ask(server, NEIGHBOUR, NEIGHBOUR_QUERIES);
            assertEquals(NEIGHBOUR_QUERIES, unloaded.answered(), "all answered without a flood");

            Process dnsperf = new ProcessBuilder("dnsperf", "-s", "127.0.0.1", "-p", String.valueOf(dns), "-a", FLOODER,
                    "-d", queries.toString(), "-l", String.valueOf(FLOOD_SECONDS), "-Q", "3000", "-q", "10000", "-c", "1",
                    "-t", "1")
                    .redirectErrorStream(true).start();
            Pace loaded = ask(server, NEIGHBOUR, NEIGHBOUR_QUERIES);
            String report = new String(dnsperf.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(dnsperf.waitFor(30, TimeUnit.SECONDS), "dnsperf finished");

            // The neighbour: at least 99.9% of its answers, about as fast as without the flood. The
            // flooder shares this machine's two cores with the proxy, unbound and this test, so the
            // far tail measures the scheduler: the median and the 95th percentile are compared.
            assertTrue(loaded.answered() >= NEIGHBOUR_QUERIES * 0.999, loaded + " vs " + unloaded);
            assertTrue(loaded.medianMillis() <= 2 * unloaded.medianMillis(), "under the flood " + loaded + ", without " + unloaded);
            assertTrue(loaded.p95Millis() <= 3 * unloaded.p95Millis(), "under the flood " + loaded + ", without " + unloaded);

            // The flooder: limited, then blocked; nearly all of the flood was refused entry.
            long sent = number(report, "Queries sent:\\s+(\\d+)");
            assertTrue(sent > 10 * QPS * FLOOD_SECONDS / 2, "a real flood was sent: " + report);
            String metrics = get(http, "/q/metrics");
            double denied = counter(metrics, "dotproxy_guard_denied_total{proto=\"udp\",result=\"rate_limited\"}")
                    + counter(metrics, "dotproxy_guard_denied_total{proto=\"udp\",result=\"blocked\"}");
            assertTrue(denied >= 0.8 * sent, denied + " of " + sent + " denied: " + metrics);
            assertTrue(counter(metrics, "dotproxy_guard_blocks_total") >= 1, metrics);
            assertTrue(counter(metrics, "dotproxy_guard_denied_total{proto=\"udp\",result=\"blocked\"}") > 0, metrics);
            assertTrue(counter(metrics, "dotproxy_server_slipped_total{proto=\"udp\"}") > 0, "every 2nd blocked query slips");
            assertTrue(proxy.output().contains("blocked for"), "one line says so: " + proxy.output());
            assertTrue(proxy.output().lines().filter(line -> line.contains("blocked for")).count() <= 3,
                    "logged once per block, never per query");

            // Still blocked right after the flood, served again once the block has expired.
            Message blocked = ask(server, FLOODER, "after.test.");
            assertTrue(blocked == null || blocked.getHeader().getFlag(Flags.TC), "dropped or slipped: " + blocked);
            assertTrue(Eventually.holds(BLOCK_TIME.plusSeconds(5), Duration.ofMillis(250), () -> {
                Message answer = ask(server, FLOODER, "a.test.");
                return answer != null && !answer.getHeader().getFlag(Flags.TC) && answer.getRcode() == Rcode.NOERROR;
            }), "served again after the block time");
        }
    }

    /** What one client got: answers, and percentiles of their round trips. */
    private record Pace(int answered, double medianMillis, double p95Millis, double p99Millis) {}

    /** Asks {@code count} queries from {@code source}, one every 20 ms (50 q/s), each waiting up to a second. */
    private static Pace ask(InetSocketAddress server, String source, int count) throws IOException, InterruptedException {
        List<Double> millis = new ArrayList<>();
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(source, 0))) {
            socket.setSoTimeout(1000);
            long next = System.nanoTime();
            for (int i = 0; i < count; i++) {
                long started = System.nanoTime();
                if (exchange(socket, server, "n" + i + ".a.test.") != null) {
                    millis.add((System.nanoTime() - started) / 1e6);
                }
                next += TimeUnit.MILLISECONDS.toNanos(20);
                long wait = next - System.nanoTime();
                if (wait > 0) {
                    TimeUnit.NANOSECONDS.sleep(wait);
                }
            }
        }
        double[] sorted = millis.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return new Pace(sorted.length, percentile(sorted, 0.5), percentile(sorted, 0.95), percentile(sorted, 0.99));
    }

    private static double percentile(double[] sorted, double share) {
        return sorted.length == 0 ? Double.NaN : sorted[Math.min(sorted.length - 1, (int) Math.ceil(sorted.length * share) - 1)];
    }

    private static Message ask(InetSocketAddress server, String source, String name) throws IOException {
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(source, 0))) {
            socket.setSoTimeout(1000);
            return exchange(socket, server, name);
        }
    }

    /** One query and its answer, or null when none came within the socket's timeout. */
    private static Message exchange(DatagramSocket socket, InetSocketAddress server, String name) throws IOException {
        Message query = Message.newQuery(Record.newRecord(Name.fromString(name), Type.A, DClass.IN));
        byte[] wire = query.toWire();
        socket.send(new DatagramPacket(wire, wire.length, server));
        byte[] buffer = new byte[1232];
        while (true) {
            DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
            try {
                socket.receive(packet);
            } catch (SocketTimeoutException none) {
                return null;
            }
            Message answer = new Message(Arrays.copyOf(buffer, packet.getLength()));
            if (answer.getHeader().getID() == query.getHeader().getID()) {
                return answer; // an earlier query's late answer is skipped
            }
        }
    }

    private static long number(String text, String regex) {
        Matcher matcher = Pattern.compile(regex).matcher(text);
        assertTrue(matcher.find(), regex + " in " + text);
        return Long.parseLong(matcher.group(1));
    }

    /** The value of one Prometheus sample line, or 0 when it is absent. */
    private static double counter(String metrics, String sample) {
        return metrics.lines().filter(line -> line.startsWith(sample + " ")).findFirst()
                .map(line -> Double.parseDouble(line.substring(sample.length() + 1).trim())).orElse(0.0);
    }

    private static String get(int port, String path) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
                HttpResponse.BodyHandlers.ofString()).body();
    }
}
