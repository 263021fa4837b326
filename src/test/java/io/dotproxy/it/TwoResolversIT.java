package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.TestCa;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Two real unbound DoT resolvers behind the packaged proxy; dnsperf sends a steady, bounded load
 * and one resolver is stopped in the middle of it. No query may be lost or fail.
 */
class TwoResolversIT {
    private static final int SECONDS = 8;
    private static final int RATE = 2000;

    @Test
    void stoppingOneResolverUnderLoadLosesNoQuery() throws Exception {
        Path dir = Files.createTempDirectory("dot-proxy-two");
        TestCa ca = TestCa.create();
        Path caFile = ca.writePem(dir.resolve("ca.pem"));
        Path first = Files.createDirectories(dir.resolve("first"));
        Path second = Files.createDirectories(dir.resolve("second"));
        Path queries = Files.writeString(dir.resolve("queries.txt"), "a.test A\na.test AAAA\n");
        int dns = DigAgainstUnboundIT.freePort();
        int http = DigAgainstUnboundIT.freePort();
        try (UnboundServer a = UnboundServer.start(ca, first, DigAgainstUnboundIT.freePort());
             UnboundServer b = UnboundServer.start(ca, second, DigAgainstUnboundIT.freePort());
             ProxyProcess proxy = ProxyProcess.start(dir, Map.of(
                     "dotproxy.listen.host", "127.0.0.1",
                     "dotproxy.listen.port", String.valueOf(dns),
                     "dotproxy.upstreams", "127.0.0.1:" + a.port() + "#" + UnboundServer.TLS_NAME
                             + ",127.0.0.1:" + b.port() + "#" + UnboundServer.TLS_NAME,
                     "dotproxy.tls.ca-file", caFile.toString(),
                     // Every query must go upstream: the cache would answer these two names itself.
                     "dotproxy.cache.enabled", "false",
                     "quarkus.http.port", String.valueOf(http),
                     "quarkus.http.host", "127.0.0.1"), Map.of())) {
            proxy.awaitReady(http);

            Process dnsperf = new ProcessBuilder("dnsperf", "-s", "127.0.0.1", "-p", String.valueOf(dns),
                    "-d", queries.toString(), "-l", String.valueOf(SECONDS), "-Q", String.valueOf(RATE), "-c", "4", "-t", "5")
                    .redirectErrorStream(true).start();
            Thread.sleep(3000);
            a.close(); // the first resolver goes away in the middle of the load
            String report = new String(dnsperf.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(dnsperf.waitFor(30, TimeUnit.SECONDS), "dnsperf finished");

            long sent = number(report, "Queries sent:\\s+(\\d+)");
            assertTrue(sent > RATE * (SECONDS - 2), "a real load was sent: " + report);
            assertEquals(0, number(report, "Queries lost:\\s+(\\d+)"), report);
            assertTrue(report.matches("(?s).*Response codes:\\s+NOERROR \\d+ \\(100\\.00%\\).*"), report + proxy.output());

            String metrics = get(http, "/q/metrics");
            assertTrue(metrics.contains("dotproxy_upstream_state{state=\"down\",upstream=\"127.0.0.1:" + a.port()
                    + "#dns.test\"} 1.0"), metrics);
            assertTrue(get(http, "/q/health/group/upstreams").contains("DOWN"));
            assertEquals(200, status(http, "/q/health/ready"), "an upstream outage does not touch readiness");
        }
    }

    private static long number(String text, String regex) {
        Matcher matcher = Pattern.compile(regex).matcher(text);
        assertTrue(matcher.find(), regex + " in " + text);
        return Long.parseLong(matcher.group(1));
    }

    private static String get(int port, String path) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
                HttpResponse.BodyHandlers.ofString()).body();
    }

    private static int status(int port, String path) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
                HttpResponse.BodyHandlers.discarding()).statusCode();
    }

}
