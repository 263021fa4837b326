package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.Manifests;
import io.dotproxy.testing.TestCa;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * deploy/monitoring/grafana-dashboard.json against a real scrape. The packaged proxy runs with the deployed
 * ConfigMap's settings file (its upstream pointed at a local unbound), answers queries over UDP
 * and TCP with the cache on, and is scraped: every metric name in the dashboard's PromQL is a
 * series of that scrape, every label it matches on is one that series carries, and the meters each
 * row stands on have data. The Deployment's probe paths are asked of the same proxy.
 */
class GrafanaDashboardIT {
    private static final Path DASHBOARD = Path.of("deploy", "monitoring", "grafana-dashboard.json");
    private static final Path MANIFESTS = Path.of("deploy", "kubernetes.yml");
    /** Labels Prometheus adds to every series of a target. */
    private static final Set<String> TARGET_LABELS = Set.of("instance", "job");
    /** What the issue asks the dashboard to show, by the meters that show it. */
    private static final Set<String> COVERED = Set.of(
            "dotproxy_server_queries_total", "dotproxy_server_responses_total", "dotproxy_upstream_rtt_seconds_bucket",
            "dotproxy_upstream_state", "dotproxy_upstream_handshakes_total", "dotproxy_upstream_fallback_queries_total",
            "dotproxy_guard_denied_total", "dotproxy_server_errors_total", "dotproxy_cache_hits_total",
            "dotproxy_cache_misses_total", "dotproxy_config_generation");

    private static final Pattern SAMPLE = Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{(.*)})? (\\S+)");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"");
    private static final Pattern SELECTOR = Pattern.compile("([a-zA-Z_:][a-zA-Z0-9_:]*)\\s*\\{([^}]*)}");
    private static final Pattern MATCHER = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)\\s*(=~|!~|!=|=)\\s*\"((?:[^\"\\\\]|\\\\.)*)\"");
    private static final Pattern IDENTIFIER = Pattern.compile("(?<![\\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*+)(?!\\s*\\()");
    private static final Set<String> KEYWORDS = Set.of("and", "or", "unless", "bool", "offset", "by", "without",
            "on", "ignoring", "group_left", "group_right", "inf", "nan");

    private static Path dir;
    private static UnboundServer unbound;
    private static ProxyProcess proxy;
    private static int httpPort;
    private static JsonNode dashboard;
    /** The scrape's samples. */
    private static List<Sample> samples;
    /** Each series name of the scrape, with the label sets it comes with. */
    private static Map<String, List<Map<String, String>>> series;

    /** One line of the scrape. */
    private record Sample(String name, Map<String, String> labels, double value) {}

    @BeforeAll
    static void runTheProxyAndScrapeIt() throws Exception {
        dir = Files.createTempDirectory("dot-proxy-dashboard");
        TestCa ca = TestCa.create();
        Path caFile = ca.writePem(dir.resolve("ca.pem"));
        unbound = UnboundServer.start(ca, dir, DigAgainstUnboundIT.freePort());
        Manifests manifests = Manifests.read(List.of(MANIFESTS));
        Path settings = Files.writeString(dir.resolve("dot-proxy.properties"), manifests.configMapEntry("dot-proxy", "dot-proxy.properties"));
        int dnsPort = DigAgainstUnboundIT.freePort();
        httpPort = DigAgainstUnboundIT.freePort();
        proxy = ProxyProcess.start(dir, Map.of(
                "dotproxy.config-file", settings.toString(),
                "dotproxy.upstreams", "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME,
                "dotproxy.tls.ca-file", caFile.toString(),
                "dotproxy.listen.host", "127.0.0.1",
                "dotproxy.listen.port", String.valueOf(dnsPort),
                "quarkus.http.host", "127.0.0.1",
                "quarkus.http.port", String.valueOf(httpPort)), Map.of());
        proxy.awaitReady(httpPort);
        // Queries at once after readiness, as a Service sends them: their meters must count them.
        for (int i = 0; i < 3; i++) { // the first a miss, the others from the cache
            assertTrue(DigAgainstUnboundIT.dig(dnsPort, "a.test", "A").contains("status: NOERROR"));
            assertTrue(DigAgainstUnboundIT.dig(dnsPort, "+tcp", "a.test", "AAAA").contains("status: NOERROR"));
        }
        assertTrue(DigAgainstUnboundIT.dig(dnsPort, "nope.test", "A").contains("status: NXDOMAIN"));
        // Quarkus binds the JVM and process meters 0.5-0.7 s after the proxy is ready; the dashboard uses some.
        assertTrue(Eventually.holds(Duration.ofSeconds(30), Duration.ofMillis(200),
                () -> get("/q/metrics").body().contains("process_cpu_time_ns_total")), "JVM meters bound");

        scrape(get("/q/metrics").body());
        dashboard = new ObjectMapper().readTree(DASHBOARD.toFile());
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

    @Test
    void everyMetricTheDashboardAsksForIsInARealScrape() {
        Set<String> used = new TreeSet<>();
        for (String expression : expressions()) {
            Set<String> names = metricNames(expression);
            assertTrue(!names.isEmpty(), "no metric in " + expression);
            for (String name : names) {
                assertTrue(series.containsKey(name), name + " (in " + expression + ") is not in /q/metrics; it has "
                        + new TreeSet<>(series.keySet()));
            }
            used.addAll(names);
        }
        assertTrue(used.containsAll(COVERED), "the dashboard shows " + used + ", not all of " + COVERED);
    }

    /** A matcher on a label a series does not carry, or on a value it never has, shows nothing. */
    @Test
    void everyLabelTheDashboardMatchesOnIsOnThatSeries() {
        for (String expression : expressions()) {
            Matcher selector = SELECTOR.matcher(expression);
            while (selector.find()) {
                String name = selector.group(1);
                Matcher matcher = MATCHER.matcher(selector.group(2));
                while (matcher.find()) {
                    String label = matcher.group(1);
                    if (TARGET_LABELS.contains(label)) {
                        continue;
                    }
                    Set<String> seen = new HashSet<>();
                    for (Map<String, String> labels : series.getOrDefault(name, List.of())) {
                        if (labels.containsKey(label)) {
                            seen.add(labels.get(label));
                        }
                    }
                    assertTrue(!seen.isEmpty(), name + " has no label " + label + " (in " + expression + ")");
                    if (matcher.group(2).equals("=") || matcher.group(2).equals("!=")) {
                        assertTrue(seen.contains(matcher.group(3)), name + "{" + label + "} is never \"" + matcher.group(3)
                                + "\": " + seen);
                    }
                }
            }
        }
    }

    /** What each row stands on has data after a few queries: the dashboard would show lines, not "No data". */
    @Test
    void theMetersBehindTheRowsHaveData() {
        assertTrue(value("dotproxy_server_queries_total", Map.of("proto", "udp")) >= 4);
        assertTrue(value("dotproxy_server_queries_total", Map.of("proto", "tcp")) >= 3);
        assertTrue(value("dotproxy_server_responses_total", Map.of("proto", "udp", "rcode", "NXDOMAIN")) >= 1);
        assertTrue(value("dotproxy_cache_hits_total", Map.of()) >= 2, "answers from the cache");
        assertTrue(value("dotproxy_cache_misses_total", Map.of()) >= 2);
        Map<String, String> upstream = Map.of("upstream", "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME);
        assertEquals(value("dotproxy_upstream_requests_total", withResult(upstream, "answered")),
                value("dotproxy_upstream_rtt_seconds_count", upstream), "an RTT for every answer");
        assertTrue(value("dotproxy_upstream_handshakes_total", upstream) >= 1);
        assertTrue(value("dotproxy_upstream_rtt_seconds_count", upstream) >= 2);
        assertEquals(1.0, value("dotproxy_upstream_state", Map.of("upstream", upstream.get("upstream"), "state", "up")));
        assertEquals(1.0, value("dotproxy_config_generation", Map.of()), "the settings file read at start-up");
    }

    private static Map<String, String> withResult(Map<String, String> labels, String result) {
        Map<String, String> more = new HashMap<>(labels);
        more.put("result", result);
        return more;
    }

    /** Importable: the data source is a variable of type prometheus, used by every panel and query. */
    @Test
    void theDashboardIsImportableWithTheDataSourceAsAVariable() {
        assertTrue(dashboard.path("schemaVersion").asInt() >= 36, "schemaVersion " + dashboard.path("schemaVersion"));
        JsonNode input = dashboard.path("__inputs").path(0);
        assertEquals("datasource", input.path("type").asText());
        assertEquals("prometheus", input.path("pluginId").asText());
        JsonNode variable = dashboard.path("templating").path("list").path(0);
        assertEquals("datasource", variable.path("name").asText());
        assertEquals("datasource", variable.path("type").asText());
        assertEquals("prometheus", variable.path("query").asText());

        Set<Integer> ids = new HashSet<>();
        for (JsonNode panel : panels()) {
            assertTrue(ids.add(panel.path("id").asInt()), "panel id " + panel.path("id") + " twice");
            JsonNode grid = panel.path("gridPos");
            assertTrue(grid.path("x").asInt() + grid.path("w").asInt() <= 24, panel.path("title") + " fits the grid");
            if (panel.path("type").asText().equals("row")) {
                continue;
            }
            assertEquals("${datasource}", panel.path("datasource").path("uid").asText(), panel.path("title").asText());
            Set<String> refIds = new HashSet<>();
            for (JsonNode target : panel.path("targets")) {
                assertEquals("${datasource}", target.path("datasource").path("uid").asText(), panel.path("title").asText());
                assertTrue(refIds.add(target.path("refId").asText()), "refId twice in " + panel.path("title"));
            }
            assertTrue(!refIds.isEmpty(), panel.path("title") + " queries something");
        }
    }

    /** The paths the Deployment's probes ask answer 200 on the packaged proxy; readiness shows the settings generation. */
    @Test
    void theDeploymentsProbePathsAnswer() throws Exception {
        Deployment deployment = Manifests.read(List.of(MANIFESTS)).get(Deployment.class, "dot-proxy");
        Container container = deployment.getSpec().getTemplate().getSpec().getContainers().get(0);
        for (Probe probe : List.of(container.getStartupProbe(), container.getLivenessProbe(), container.getReadinessProbe())) {
            HttpResponse<String> response = get(probe.getHttpGet().getPath());
            assertEquals(200, response.statusCode(), probe.getHttpGet().getPath() + ": " + response.body());
        }
        String ready = get(container.getReadinessProbe().getHttpGet().getPath()).body();
        assertTrue(Pattern.compile("\"settings-generation\"\\s*:\\s*1\\b").matcher(ready).find(), ready);
    }

    /** The metric names of a PromQL expression: identifiers outside strings, matchers, ranges and groupings that call nothing. */
    static Set<String> metricNames(String expression) {
        String bare = expression.replaceAll("\"(?:[^\"\\\\]|\\\\.)*\"", "\"\"")
                .replaceAll("\\{[^}]*}", " ")
                .replaceAll("\\[[^]]*]", " ")
                .replaceAll("\\b(by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)", " ");
        Set<String> names = new TreeSet<>();
        Matcher identifier = IDENTIFIER.matcher(bare);
        while (identifier.find()) {
            if (!KEYWORDS.contains(identifier.group(1).toLowerCase())) {
                names.add(identifier.group(1));
            }
        }
        return names;
    }

    @Test
    void metricNamesAreFoundAsPromQlHasThem() {
        assertEquals(Set.of("a_bucket", "b_total"), metricNames(
                "histogram_quantile(0.95, sum by (upstream, le) (rate(a_bucket{x=~\"$i\", y=\"z w\"}[$__rate_interval])))"
                        + " / on (le) group_left sum without (q) (b_total offset 5m) > bool 0"));
    }

    private static List<String> expressions() {
        List<String> expressions = new ArrayList<>();
        for (JsonNode panel : panels()) {
            for (JsonNode target : panel.path("targets")) {
                expressions.add(target.path("expr").asText());
            }
        }
        for (JsonNode variable : dashboard.path("templating").path("list")) {
            Matcher labelValues = Pattern.compile("label_values\\((\\w+)\\s*,\\s*(\\w+)\\)").matcher(variable.path("query").path("query").asText());
            if (labelValues.find()) {
                expressions.add(labelValues.group(1) + "{" + labelValues.group(2) + "=~\".+\"}");
            }
        }
        assertTrue(expressions.size() >= 10, "queries: " + expressions);
        return expressions;
    }

    private static List<JsonNode> panels() {
        List<JsonNode> panels = new ArrayList<>();
        for (JsonNode panel : dashboard.path("panels")) {
            panels.add(panel);
            panel.path("panels").forEach(panels::add); // panels of a collapsed row
        }
        return panels;
    }

    private static void scrape(String text) {
        samples = new ArrayList<>();
        series = new HashMap<>();
        for (String line : text.lines().toList()) {
            Matcher sample = SAMPLE.matcher(line);
            if (line.startsWith("#") || !sample.find()) {
                continue;
            }
            Map<String, String> labels = new LinkedHashMap<>();
            if (sample.group(2) != null) {
                Matcher label = LABEL.matcher(sample.group(2));
                while (label.find()) {
                    labels.put(label.group(1), label.group(2));
                }
            }
            samples.add(new Sample(sample.group(1), labels, Double.parseDouble(sample.group(3))));
            series.computeIfAbsent(sample.group(1), name -> new ArrayList<>()).add(labels);
        }
        assertTrue(series.keySet().stream().anyMatch(name -> name.startsWith("dotproxy_")), text);
    }

    /** The sum of the samples of {@code name} that carry these labels (and maybe others). */
    private static double value(String name, Map<String, String> labels) {
        List<Sample> matching = samples.stream().filter(sample -> sample.name().equals(name))
                .filter(sample -> sample.labels().entrySet().containsAll(labels.entrySet())).toList();
        assertTrue(!matching.isEmpty(), "no series " + name + labels);
        return matching.stream().mapToDouble(Sample::value).sum();
    }

    private static HttpResponse<String> get(String path) throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + path))
                .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
    }
}
