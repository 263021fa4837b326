package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * End to end with real software: the packaged proxy in front of Debian's unbound as a DoT
 * resolver (test CA, loopback), queried by {@code dig} over UDP and TCP.
 */
class DigAgainstUnboundIT {
    private static Path dir;
    private static TestCa ca;
    private static Path caFile;
    private static UnboundServer unbound;
    private static ProxyProcess proxy;
    private static int dnsPort;

    @BeforeAll
    static void start() throws Exception {
        dir = Files.createTempDirectory("dot-proxy-it");
        ca = TestCa.create();
        caFile = ca.writePem(dir.resolve("ca.pem"));
        unbound = UnboundServer.start(ca, dir, freePort());
        dnsPort = freePort();
        int httpPort = freePort();
        proxy = ProxyProcess.start(dir, proxyProperties(dnsPort, httpPort,
                "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME), Map.of());
        proxy.awaitReady(httpPort);
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

    private static Map<String, String> proxyProperties(int dns, int http, String upstreams) {
        return Map.of(
                "dotproxy.listen.host", "127.0.0.1",
                "dotproxy.listen.port", String.valueOf(dns),
                "dotproxy.upstreams", upstreams,
                "dotproxy.tls.ca-file", caFile.toString(),
                "quarkus.http.port", String.valueOf(http),
                "quarkus.http.host", "127.0.0.1");
    }

    /** A port free for both TCP and UDP on loopback, at the time of asking. */
    static int freePort() throws IOException {
        for (int i = 0; i < 20; i++) {
            try (ServerSocket tcp = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                int port = tcp.getLocalPort();
                try (DatagramSocket udp = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), port))) {
                    return port;
                } catch (IOException takenForUdp) {
                    // try another
                }
            }
        }
        throw new IOException("no free port");
    }

    /** Runs dig against the proxy and returns what it printed. */
    static String dig(int port, String... arguments) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("dig", "@127.0.0.1", "-p", String.valueOf(port),
                "+time=3", "+tries=1"));
        command.addAll(List.of(arguments));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(20, TimeUnit.SECONDS), "dig finished");
        return output;
    }

    @Test
    void answersOverUdp() throws Exception {
        String out = dig(dnsPort, "a.test", "A");
        assertTrue(out.contains("status: NOERROR"), out);
        assertTrue(out.contains("a.test.\t\t\t300\tIN\tA\t192.0.2.1") || out.matches("(?s).*a\\.test\\.\\s+\\d+\\s+IN\\s+A\\s+192\\.0\\.2\\.1.*"), out);
        assertTrue(out.contains("(UDP)"), out);
    }

    @Test
    void answersOverTcp() throws Exception {
        String out = dig(dnsPort, "+tcp", "a.test", "AAAA");
        assertTrue(out.contains("status: NOERROR"), out);
        assertTrue(out.matches("(?s).*a\\.test\\.\\s+\\d+\\s+IN\\s+AAAA\\s+2001:db8::1.*"), out);
        assertTrue(out.contains("(TCP)"), out);
    }

    @Test
    void nameOutsideTheZonePassesTheResolversAnswerThrough() throws Exception {
        String out = dig(dnsPort, "nope.test", "A");
        assertTrue(out.contains("status: NXDOMAIN"), out);
    }

    @Test
    void largeAnswerIsTruncatedOverUdpAndDigRetriesOverTcp() throws Exception {
        String udpOnly = dig(dnsPort, "+ignore", "+noedns", "big.test", "TXT");
        assertTrue(udpOnly.matches("(?s).*flags: qr[a-z ]* tc[a-z ]*;.*"), udpOnly);
        assertTrue(udpOnly.contains("ANSWER: 0"), udpOnly);

        String retried = dig(dnsPort, "big.test", "TXT");
        assertTrue(retried.contains("Truncated, retrying in TCP mode"), retried);
        assertTrue(retried.contains("ANSWER: " + UnboundServer.BIG_RECORDS + ","), retried);
        assertTrue(retried.contains("(TCP)"), retried);
        assertFalse(retried.matches("(?s).*flags: qr[a-z ]* tc.*"), retried);
    }

    /**
     * The image's start-up recipe with this JVM: its JAVA_OPTS, and the class-data sharing archive
     * that {@code src/main/docker/cds-train.sh} writes at image build. {@code -Xshare:on} makes the
     * JVM refuse to start unless the archive maps.
     */
    @Test
    void imageJvmOptionsWithTheTrainedCdsArchiveStartAndAnswer() throws Exception {
        String dockerfile = Files.readString(Path.of("Dockerfile.jvm"));
        Matcher opts = Pattern.compile("(?m)^ENV JAVA_OPTS=\"(.*)\"$").matcher(dockerfile);
        assertTrue(opts.find(), "JAVA_OPTS in Dockerfile.jvm");
        List<String> javaOpts = List.of(opts.group(1).split(" "));
        Path archive = dir.resolve("app-cds.jsa");

        List<String> train = new ArrayList<>(List.of("bash", "src/main/docker/cds-train.sh",
                ProxyProcess.JAR.toString(), archive.toString()));
        train.addAll(javaOpts);
        Path trainingLog = dir.resolve("cds-train.log");
        ProcessBuilder training = new ProcessBuilder(train).redirectErrorStream(true).redirectOutput(trainingLog.toFile());
        training.environment().put("PATH", Path.of(ProxyProcess.java()).getParent() + ":" + System.getenv("PATH"));
        Process trainer = training.start();
        // Output goes to a file, so this bound holds (a pipe read would block until the script ends).
        assertTrue(trainer.waitFor(150, TimeUnit.SECONDS), "training finished");
        assertEquals(0, trainer.exitValue(), Files.readString(trainingLog));
        assertTrue(Files.size(archive) > 1_000_000, "archive of " + Files.size(archive) + " octets");

        int dns = freePort();
        int http = freePort();
        List<String> jvm = new ArrayList<>(List.of("-Xshare:on", "-XX:SharedArchiveFile=" + archive, "-Xlog:cds=info"));
        jvm.addAll(javaOpts);
        try (ProxyProcess imageLike = ProxyProcess.start(dir, jvm,
                proxyProperties(dns, http, "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME), Map.of())) {
            imageLike.awaitReady(http);
            String out = dig(dns, "a.test", "A");
            assertTrue(out.contains("status: NOERROR"), out + imageLike.output());
            assertTrue(imageLike.output().contains("Mapped dynamic region"), imageLike.output());
        }
    }

    @Test
    void dotHostEnvironmentVariableReplacesTheUpstreamList() throws Exception {
        int dns = freePort();
        int http = freePort();
        Map<String, String> env = Map.of("DoT_HOST", "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME);
        // The configured list points at a port where nothing listens: only DoT_HOST can answer.
        try (ProxyProcess seeded = ProxyProcess.start(dir, proxyProperties(dns, http, "127.0.0.1:1#nowhere.test"), env)) {
            seeded.awaitReady(http);
            String out = dig(dns, "a.test", "A");
            assertTrue(out.contains("status: NOERROR"), out + seeded.output());
            assertTrue(seeded.output().contains("127.0.0.1:" + unbound.port() + "#dns.test"), seeded.output());
        }
    }

    @Test
    void aSettingsFileNamedByTheEnvironmentSetsTheUpstreamAndAMaskedKeyIsReported() throws Exception {
        int dns = freePort();
        int http = freePort();
        Path file = Files.writeString(dir.resolve("settings.properties"), String.join("\n",
                "# as a mounted ConfigMap would hold them",
                "dotproxy.upstreams=127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME,
                "dotproxy.tls.ca-file=" + caFile,
                "dotproxy.timeout=2s",
                ""));
        // No upstream among the -D properties: only the file's can answer. Its timeout is masked.
        Map<String, String> properties = Map.of(
                "dotproxy.listen.host", "127.0.0.1",
                "dotproxy.listen.port", String.valueOf(dns),
                "dotproxy.timeout", "3s",
                "quarkus.http.port", String.valueOf(http),
                "quarkus.http.host", "127.0.0.1");
        try (ProxyProcess fromFile = ProxyProcess.start(dir, properties, Map.of("DOTPROXY_CONFIG_FILE", file.toString()))) {
            fromFile.awaitReady(http);
            String out = dig(dns, "a.test", "A");
            assertTrue(out.contains("status: NOERROR"), out + fromFile.output());
            assertTrue(fromFile.output().contains("127.0.0.1:" + unbound.port() + "#dns.test"), fromFile.output());
            assertTrue(fromFile.output().contains("dotproxy.timeout in " + file + " has no effect: -Ddotproxy.timeout sets it too"),
                    fromFile.output());
            assertFalse(fromFile.output().contains("dotproxy.upstreams in"), "an unmasked key is not reported");
        }
    }

    @Test
    void aChangedSettingsFileIsAppliedWithoutARestartAndABrokenOneIsRejected() throws Exception {
        int dns = freePort();
        int http = freePort();
        String base = "dotproxy.upstreams=127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME + "\n"
                + "dotproxy.tls.ca-file=" + caFile + "\n"
                + "dotproxy.timeout=2s\n"; // masked by the -D below, which each reload says again
        Path file = dir.resolve("live.properties");
        replace(file, base);
        Map<String, String> properties = Map.of(
                "dotproxy.listen.host", "127.0.0.1",
                "dotproxy.listen.port", String.valueOf(dns),
                "dotproxy.timeout", "3s",
                "quarkus.http.port", String.valueOf(http),
                "quarkus.http.host", "127.0.0.1");
        try (ProxyProcess live = ProxyProcess.start(dir, properties, Map.of("DOTPROXY_CONFIG_FILE", file.toString()))) {
            live.awaitReady(http);
            assertTrue(dig(dns, "a.test", "A").contains("status: NOERROR"), live.output());
            assertTrue(get(http, "/q/health/ready").contains("\"settings-generation\": 1"), get(http, "/q/health/ready"));

            replace(file, base + "dotproxy.allow=10.0.0.0/8\n"); // loopback may no longer ask
            assertTrue(Eventually.holds(Duration.ofSeconds(20), Duration.ofMillis(200),
                    () -> dig(dns, "a.test", "A").contains("status: REFUSED")), live.output());
            assertTrue(get(http, "/q/health/ready").contains("\"settings-generation\": 2"), get(http, "/q/health/ready"));
            assertTrue(get(http, "/q/metrics").contains("dotproxy_config_reloads_total{result=\"applied\"} 1.0"));
            assertEquals(2, live.output().lines().filter(line -> line.contains("dotproxy.timeout in " + file + " has no effect"))
                    .count(), "the masked key is named at start-up and again at the reload: " + live.output());

            replace(file, base + "dotproxy.max-in-flight=0\n"); // broken: rejected whole
            assertTrue(Eventually.holds(Duration.ofSeconds(20), Duration.ofMillis(200),
                    () -> get(http, "/q/metrics").contains("dotproxy_config_reloads_total{result=\"rejected\"} 1.0")),
                    live.output());
            assertTrue(live.output().contains("Invalid configuration: dotproxy.max-in-flight=0"), live.output());
            assertTrue(dig(dns, "a.test", "A").contains("status: REFUSED"), "the settings in force stay");

            replace(file, base);
            assertTrue(Eventually.holds(Duration.ofSeconds(20), Duration.ofMillis(200),
                    () -> dig(dns, "a.test", "A").contains("status: NOERROR")), live.output());
            assertTrue(get(http, "/q/health/ready").contains("\"settings-generation\": 3"), get(http, "/q/health/ready"));
        }
    }

    /** Replaces a file's contents in one rename, as editors and ConfigMap updates do. */
    private static void replace(Path file, String contents) throws IOException {
        Path next = Files.writeString(file.resolveSibling(file.getFileName() + ".next"), contents);
        Files.move(next, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    private static String get(int port, String path) throws Exception {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(),
                HttpResponse.BodyHandlers.ofString()).body();
    }

    @Test
    void aMissingSettingsFileStopsStartUpWithOneLine() throws Exception {
        Path missing = dir.resolve("no-such-settings.properties");
        Map<String, String> properties = proxyProperties(freePort(), freePort(), "127.0.0.1:853");
        try (ProxyProcess bad = ProxyProcess.start(dir, properties, Map.of("DOTPROXY_CONFIG_FILE", missing.toString()))) {
            assertEquals(1, bad.awaitExit(Duration.ofSeconds(30)));
            List<String> errors = bad.output().lines().filter(line -> line.contains("ERROR")).toList();
            assertEquals(1, errors.size(), bad.output());
            assertTrue(errors.get(0).contains("Invalid configuration: dotproxy.config-file=" + missing
                    + ": expected a readable properties file"), errors.get(0));
        }
    }

    @Test
    void badSettingStopsStartUpWithOneLineNamingIt() throws Exception {
        Map<String, String> properties = proxyProperties(freePort(), freePort(), "1.1.1.1:99999");
        try (ProxyProcess bad = ProxyProcess.start(dir, properties, Map.of())) {
            assertEquals(1, bad.awaitExit(Duration.ofSeconds(30)));
            List<String> errors = bad.output().lines().filter(line -> line.contains("ERROR")).toList();
            assertEquals(1, errors.size(), bad.output());
            assertTrue(errors.get(0).contains("dotproxy.upstreams=1.1.1.1:99999"), errors.get(0));
            assertTrue(errors.get(0).contains("from 1 to 65535"), errors.get(0));
            assertFalse(bad.output().contains("\tat "), "no stack trace: " + bad.output());
        }
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
        "dotproxy.timeout           | abc  | expected a duration such as 2s, 500ms or 1m",
        "dotproxy.upstream.pool-size | many | expected a whole number",
    })
    void valueThatCannotEvenBeConvertedStopsStartUpWithTheSameOneLine(String setting, String value, String allowed)
            throws Exception {
        Map<String, String> properties = new HashMap<>(proxyProperties(freePort(), freePort(), "127.0.0.1:853"));
        properties.put(setting, value);
        try (ProxyProcess bad = ProxyProcess.start(dir, properties, Map.of())) {
            assertEquals(1, bad.awaitExit(Duration.ofSeconds(30)));
            List<String> lines = bad.output().lines().filter(line -> !line.isBlank()).toList();
            assertEquals(1, lines.size(), bad.output());
            assertEquals("Invalid configuration: " + setting + "=" + value + ": " + allowed, lines.get(0));
        }
    }
}
