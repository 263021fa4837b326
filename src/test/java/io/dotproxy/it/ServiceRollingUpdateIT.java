package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.TestCa;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A Kubernetes Service of three proxy replicas, built on one machine from the parts that matter to
 * DNS, in a network namespace of the test's own: the packaged proxy as pods on loopback addresses,
 * a ClusterIP whose nftables DNAT spreads new flows over the ready replicas ({@link ServiceNat}, as
 * kube-proxy does), a loop that plays the endpoints controller and kube-proxy's sync
 * ({@link EndpointsController}), and a Deployment's rolling update ({@link ProxyDeployment}), all
 * under a bounded dnsperf load through the ClusterIP, over UDP and TCP at once; unbound, in the
 * same namespace, is the replicas' DoT resolver.
 *
 * <p>A rolling update loses no query only if each replica keeps answering after SIGTERM until the
 * Service sends it neither new flows nor its old UDP flows ({@code dotproxy.shutdown.drain-delay}):
 * its readiness must go down, so that its endpoint stops serving. With a delay of 0 the same roll
 * loses queries, which shows that the test can fail.
 *
 * <p>What "no query lost" leaves out: when kube-proxy deletes a replica's UDP flows, an answer still
 * in flight comes back from the replica's own address instead of the ClusterIP's ({@link ServiceNat}
 * counts them, the test prints the count). dnsperf reads an unconnected socket and takes it; a
 * client with a connected socket (glibc's stub resolver, CoreDNS's forward) drops it and asks again
 * after its timeout. That race is kube-proxy's, the same for any server behind a Service, and no
 * drain closes it.
 */
class ServiceRollingUpdateIT {
    private static final String CLUSTER_IP = "127.0.0.100";
    private static final int SERVICE_PORT = 53;
    private static final int UNBOUND_PORT = 853;
    private static final int NAMES = 100;
    /** The probes' period and kube-proxy's sync; see {@link EndpointsController}. */
    private static final Duration SYNC_PERIOD = Duration.ofSeconds(1);
    /**
     * The default: a draining replica stops serving here within {@code SYNC_PERIOD ×
     * FAILURE_THRESHOLD} (2 s) and a probe; the rest is room for a loaded machine.
     */
    private static final String DRAIN_DELAY = "5s";
    /** The manifests' terminationGracePeriodSeconds: an old replica that has not exited by then would be killed. */
    private static final Duration GRACE_PERIOD = Duration.ofSeconds(30);
    /**
     * dnsperf's wait for an answer: a query unanswered by then is lost. Above the proxies' deadline
     * ({@link #DEADLINE}), so that a slow answer comes as SERVFAIL, not as a loss.
     */
    private static final int TIMEOUT_SECONDS = 5;
    /**
     * The proxies' deadline ({@code dotproxy.timeout}), above its 2 s default: the two shared cores
     * stall now and then for a second or two (other runs), which this test is not about. A replica
     * that stops reading its socket loses the query however long its client waits.
     */
    private static final String DEADLINE = "4s";
    private static final int UDP_RATE = 400;
    private static final int TCP_RATE = 200;

    private static Path dir;
    private static NetworkNamespace namespace;
    private static UnboundServer unbound;
    private static Path caFile;
    private static Path queries;

    @BeforeAll
    static void buildTheService() throws Exception {
        dir = Files.createTempDirectory("dot-proxy-service");
        namespace = NetworkNamespace.create();
        TestCa ca = TestCa.create();
        caFile = ca.writePem(dir.resolve("ca.pem"));
        List<String> names = IntStream.range(0, NAMES).mapToObj(i -> "n" + i + ".svc.test.").toList();
        unbound = UnboundServer.start(ca, Files.createDirectory(dir.resolve("unbound")), UNBOUND_PORT,
                new UnboundServer.Options(false, false, names.stream().map(name -> name + " 300 IN A 192.0.2.7").toList()),
                namespace);
        queries = Files.writeString(dir.resolve("queries.txt"),
                names.stream().map(name -> name + " A").collect(Collectors.joining("\n", "", "\n")));
    }

    @AfterAll
    static void tearDown() throws Exception {
        try {
            if (unbound != null) {
                unbound.close();
            }
        } finally {
            if (namespace != null) {
                namespace.close();
            }
        }
    }

    @Test
    void theClusterIpSpreadsQueriesOverTheReadyReplicasAndLosesNone() throws Exception {
        try (ServiceNat service = ServiceNat.install(namespace, CLUSTER_IP, SERVICE_PORT, ProxyDeployment.DNS_PORT);
             EndpointsController endpoints = new EndpointsController(namespace, service, SYNC_PERIOD);
             ProxyDeployment deployment = deployment(11, DRAIN_DELAY, endpoints)) {
            deployment.scaleUp(3);
            Load.Reports reports;
            try (Load load = Load.start()) {
                Thread.sleep(6_000);
                reports = load.stop();
            }

            String context = context(reports, service, endpoints, deployment);
            assertNothingLost(reports.udp(), context);
            assertNothingLost(reports.tcp(), context);
            assertEveryReplicaAnswered(deployment.traffic(), context);
        }
    }

    @Test
    void aRollingUpdateLosesNoQueryWhenEachReplicaDrains() throws Exception {
        try (ServiceNat service = ServiceNat.install(namespace, CLUSTER_IP, SERVICE_PORT, ProxyDeployment.DNS_PORT);
             EndpointsController endpoints = new EndpointsController(namespace, service, SYNC_PERIOD);
             ProxyDeployment deployment = deployment(21, DRAIN_DELAY, endpoints)) {
            Load.Reports reports = roll(deployment, endpoints);

            String context = context(reports, service, endpoints, deployment);
            System.out.println("A rolling update with a " + DRAIN_DELAY + " drain delay: "
                    + summary(reports, service, endpoints, deployment));
            assertNothingLost(reports.udp(), context);
            assertNothingLost(reports.tcp(), context);
            assertEquals(6, deployment.traffic().size(), context);
            assertEveryReplicaAnswered(deployment.traffic(), context);
        }
    }

    @Test
    void aRollingUpdateWithoutDrainDelayLosesQueries() throws Exception {
        try (ServiceNat service = ServiceNat.install(namespace, CLUSTER_IP, SERVICE_PORT, ProxyDeployment.DNS_PORT);
             EndpointsController endpoints = new EndpointsController(namespace, service, SYNC_PERIOD);
             ProxyDeployment deployment = deployment(31, "0s", endpoints)) {
            Load.Reports reports = roll(deployment, endpoints);

            String context = context(reports, service, endpoints, deployment);
            long udpLoss = reports.udp().lost() + reports.udp().failed();
            long tcpLoss = reports.tcp().lost() + reports.tcp().failed();
            System.out.printf("Without a drain delay, a rolling update lost or failed %d UDP and %d TCP queries: %s%n",
                    udpLoss, tcpLoss, summary(reports, service, endpoints, deployment));
            assertTrue(udpLoss + tcpLoss > 0, "queries lost without a drain delay: " + context);
        }
    }

    /** Three replicas, then a rolling update of all three under load, and a tail for late losses to show. */
    private static Load.Reports roll(ProxyDeployment deployment, EndpointsController endpoints) throws Exception {
        deployment.scaleUp(3);
        try (Load load = Load.start()) {
            Thread.sleep(2_000); // the load spread over the first three
            deployment.rollingUpdate(GRACE_PERIOD);
            endpoints.failIfBroken();
            // A query lost near the end must have had its timeout before dnsperf stops, or it counts as interrupted.
            Thread.sleep(SYNC_PERIOD.toMillis() + (TIMEOUT_SECONDS + 1) * 1000L);
            return load.stop();
        }
    }

    private static ProxyDeployment deployment(int firstHost, String drainDelay, EndpointsController endpoints) {
        return new ProxyDeployment(namespace, dir, firstHost, Map.of(
                "dotproxy.upstreams", "127.0.0.1:" + UNBOUND_PORT + "#" + UnboundServer.TLS_NAME,
                "dotproxy.tls.ca-file", caFile.toString(),
                // Every query goes to the resolver, so that one in flight at SIGTERM is a real upstream round trip.
                "dotproxy.cache.enabled", "false",
                "dotproxy.timeout", DEADLINE),
                // As a pod template's env sets it (ProxyProcess sets 0s unless a test says otherwise).
                Map.of("DOTPROXY_SHUTDOWN_DRAIN_DELAY", drainDelay), endpoints);
    }

    /**
     * dnsperf over UDP and over TCP at once through the ClusterIP, at most two minutes. UDP: 64
     * clients, each its own socket and so its own flow, kept for the whole run (conntrack keeps each
     * on its replica until the replica stops serving). TCP: 8 clients that reconnect every 20
     * queries (about every second), as clients with pooled connections do (CoreDNS's forward
     * expires its connections after 10 s): a new connection is a new flow, to a ready replica.
     * Queries outstanding ({@code -q}) may reach a whole timeout's worth, so that lost queries
     * waiting for their timeout never hold back the rest of the load.
     */
    private record Load(DnsperfLoad udp, DnsperfLoad tcp) implements AutoCloseable {
        record Reports(DnsperfLoad.Report udp, DnsperfLoad.Report tcp) {}

        static Load start() throws Exception {
            List<String> common = List.of("-l", "120", "-t", String.valueOf(TIMEOUT_SECONDS));
            DnsperfLoad udp = DnsperfLoad.start(namespace, dir, CLUSTER_IP, SERVICE_PORT, queries, concat(common,
                    List.of("-m", "udp", "-c", "64", "-Q", String.valueOf(UDP_RATE), "-q", String.valueOf(UDP_RATE * TIMEOUT_SECONDS))));
            DnsperfLoad tcp = DnsperfLoad.start(namespace, dir, CLUSTER_IP, SERVICE_PORT, queries, concat(common,
                    List.of("-m", "tcp", "-c", "8", "-Q", String.valueOf(TCP_RATE), "-q", String.valueOf(TCP_RATE * TIMEOUT_SECONDS),
                            "-O", "num-queries-per-conn=20")));
            return new Load(udp, tcp);
        }

        Reports stop() throws Exception {
            return new Reports(udp.stop(), tcp.stop());
        }

        @Override
        public void close() throws InterruptedException {
            try {
                udp.close();
            } finally {
                tcp.close();
            }
        }

        private static List<String> concat(List<String> a, List<String> b) {
            return Stream.concat(a.stream(), b.stream()).toList();
        }
    }

    private static void assertNothingLost(DnsperfLoad.Report report, String context) {
        assertTrue(report.sent() > 1000, "a real load was sent: " + context);
        assertEquals(0, report.lost(), "no query lost: " + context);
        assertEquals(0, report.failed(), "every answer NOERROR: " + context);
    }

    private static void assertEveryReplicaAnswered(Map<String, ProxyDeployment.Traffic> traffic, String context) {
        traffic.forEach((address, queries) -> {
            assertTrue(queries.udp() > 0, address + " got UDP queries: " + context);
            assertTrue(queries.tcp() > 0, address + " got TCP queries: " + context);
        });
    }

    /** What happened, in a few lines. */
    private static String summary(Load.Reports reports, ServiceNat service, EndpointsController endpoints,
                                  ProxyDeployment deployment) throws Exception {
        return "\nUDP: " + outcome(reports.udp()) + "\nTCP: " + outcome(reports.tcp())
                + "\nendpoints: " + endpoints.history()
                + "\nqueries by replica: " + deployment.traffic()
                + "\nanswers that missed their flow (see ServiceNat): " + service.strayAnswers();
    }

    private static String outcome(DnsperfLoad.Report report) {
        return "sent " + report.sent() + ", lost " + report.lost() + ", interrupted " + report.interrupted() + ", " + report.rcodes();
    }

    /** The summary, dnsperf's reports and the end of each replica's log, for a failure's message. */
    private static String context(Load.Reports reports, ServiceNat service, EndpointsController endpoints,
                                  ProxyDeployment deployment) throws Exception {
        StringBuilder text = new StringBuilder(summary(reports, service, endpoints, deployment));
        text.append("\nUDP: ").append(reports.udp().summary()).append("\nTCP: ").append(reports.tcp().summary());
        for (ProxyDeployment.Replica replica : deployment.replicas()) {
            List<String> lines = replica.log().lines().toList();
            text.append("\n--- ").append(replica.address()).append(" (last lines)\n")
                    .append(String.join("\n", lines.subList(Math.max(0, lines.size() - 8), lines.size())));
        }
        return text.toString();
    }
}
