package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
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
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Type;

/**
 * The packaged proxy reads its upstream from a settings file mounted as Kubernetes mounts a
 * ConfigMap; while a client asks a steady stream of queries, the file is moved to another resolver
 * by the kubelet's symlink swap: the queries move to it (the resolvers' own counters show it) and
 * not one fails. A broken file then is rejected, and the settings in force keep serving.
 */
class ReloadIT {
    private static final int QUERIES = 1200;
    private static final long PACE_NANOS = TimeUnit.MILLISECONDS.toNanos(5); // 200 q/s, about 6 s



    static String settings(UnboundServer upstream, Path caFile) {
        return "dotproxy.upstreams=127.0.0.1:" + upstream.port() + "#" + UnboundServer.TLS_NAME + "\n"
                + "dotproxy.tls.ca-file=" + caFile + "\n"
                + "# every query must reach a resolver, so that their counters tell where it went\n"
                + "dotproxy.cache.enabled=false\n";
    }

    @Test
    void aSymlinkSwapMovesTheQueriesToTheOtherResolverWithoutOneFailing() throws Exception {
        Path dir = Files.createTempDirectory("dot-proxy-reload");
        TestCa ca = TestCa.create();
        Path caFile = ca.writePem(dir.resolve("ca.pem"));
        UnboundServer.Options counting = new UnboundServer.Options(true, true, List.of());
        int dns = DigAgainstUnboundIT.freePort();
        int http = DigAgainstUnboundIT.freePort();
        try (UnboundServer a = UnboundServer.start(ca, Files.createDirectory(dir.resolve("a")), DigAgainstUnboundIT.freePort(), counting);
             UnboundServer b = UnboundServer.start(ca, Files.createDirectory(dir.resolve("b")), DigAgainstUnboundIT.freePort(), counting)) {
            ConfigMapMount mount = ConfigMapMount.create(dir, settings(a, caFile));
            Path file = mount.file();
            try (ProxyProcess proxy = ProxyProcess.start(dir, Map.of(
                    "dotproxy.listen.host", "127.0.0.1",
                    "dotproxy.listen.port", String.valueOf(dns),
                    "quarkus.http.port", String.valueOf(http),
                    "quarkus.http.host", "127.0.0.1"), Map.of("DOTPROXY_CONFIG_FILE", file.toString()))) {
                proxy.awaitReady(http);
                long aBefore = a.queries();
                long bBefore = b.queries();

                CompletableFuture<int[]> stream = CompletableFuture.supplyAsync(() -> ask(dns));
                Thread.sleep(2000); // a third of the stream on the first resolver
                mount.publish(settings(b, caFile));
                int[] outcome = stream.get(60, TimeUnit.SECONDS);

                assertEquals(QUERIES, outcome[0], "every query answered, none timed out: " + proxy.output());
                assertEquals(0, outcome[1], "no SERVFAIL: " + proxy.output());
                long toA = a.queries() - aBefore;
                long toB = b.queries() - bBefore;
                assertTrue(toA > QUERIES / 10 && toB > QUERIES / 10, "both resolvers took part: " + toA + " and " + toB);
                assertEquals(QUERIES, toA + toB, "each query reached one resolver once");
                String metrics = get(http, "/q/metrics");
                assertTrue(metrics.contains("dotproxy_config_reloads_total{result=\"applied\"} 1.0"), metrics);
                assertTrue(get(http, "/q/health/ready").contains("\"settings-generation\": 2"));

                long aAfter = a.queries();
                assertEquals(0, ask(dns, 50)[1]);
                assertEquals(aAfter, a.queries(), "the first resolver gets no query any more");

                mount.publish("dotproxy.upstreams=not an address\n");
                assertTrue(Eventually.holds(Duration.ofSeconds(30), Duration.ofMillis(200),
                        () -> get(http, "/q/metrics").contains("dotproxy_config_reloads_total{result=\"rejected\"} 1.0")),
                        proxy.output());
                long bBeforeBroken = b.queries();
                int[] afterBroken = ask(dns, 50);
                assertEquals(50, afterBroken[0], "the settings in force keep serving");
                assertEquals(50, b.queries() - bBeforeBroken);
                assertTrue(proxy.output().contains("rejected, the settings in force stay: Invalid configuration: dotproxy.upstreams"),
                        proxy.output());
            }
        }
    }

    private static int[] ask(int port) {
        try {
            return ask(port, QUERIES);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Asks {@code count} distinct names, paced; returns {answered, SERVFAIL}. */
    private static int[] ask(int port, int count) throws Exception {
        int answered = 0;
        int servfail = 0;
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            socket.setSoTimeout(2000);
            long next = System.nanoTime();
            byte[] buffer = new byte[1232];
            for (int i = 0; i < count; i++) {
                Message query = Message.newQuery(Record.newRecord(
                        Name.fromString("q" + i + "-" + System.nanoTime() + ".a.test."), Type.A, DClass.IN));
                byte[] wire = query.toWire();
                socket.send(new DatagramPacket(wire, wire.length, InetAddress.getLoopbackAddress(), port));
                while (true) {
                    DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
                    try {
                        socket.receive(packet);
                    } catch (SocketTimeoutException lost) {
                        break;
                    }
                    Message answer = new Message(Arrays.copyOf(buffer, packet.getLength()));
                    if (answer.getHeader().getID() == query.getHeader().getID()) {
                        answered++;
                        if (answer.getRcode() == Rcode.SERVFAIL) {
                            servfail++;
                        }
                        break;
                    }
                }
                next += PACE_NANOS;
                long wait = next - System.nanoTime();
                if (wait > 0) {
                    TimeUnit.NANOSECONDS.sleep(wait);
                }
            }
        }
        return new int[] {answered, servfail};
    }

    private static String get(int port, String path) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
                HttpResponse.BodyHandlers.ofString()).body();
    }
}
