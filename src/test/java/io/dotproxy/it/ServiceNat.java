package io.dotproxy.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A Service's ClusterIP as kube-proxy (nftables mode) programs it on a node, in a namespace of the
 * test's own: a new flow, UDP or TCP, to {@code clusterIp:port} is DNATed to one of the serving
 * endpoints picked at random ({@code numgen random mod N}, as kube-proxy's service chains pick),
 * and conntrack keeps every later packet of that flow on the endpoint it got, replies included
 * (their source rewritten back to the ClusterIP).
 *
 * <p>The clients are processes in the same namespace, so their packets are locally generated:
 * they pass the nat {@code output} hook and never {@code prerouting} (kube-proxy hooks both for the
 * same reason). {@code net.ipv4.conf.*.route_localnet} is not needed: it lets 127/8 addresses be
 * routed through a non-loopback interface (kube-proxy sets it for NodePorts on localhost, whose
 * packets go out to a pod's interface); here the DNATed packet never leaves {@code lo}.
 *
 * <p>New flows go to the <em>ready</em> endpoints only. When an endpoint stops <em>serving</em>
 * (its readiness probe fails, or it is removed), its UDP flows to the ClusterIP are deleted from
 * conntrack, as kube-proxy's {@code conntrack.CleanStaleEntries} does after each sync (entries whose
 * original destination is the ClusterIP and whose reply source is not a serving endpoint): a UDP
 * client that keeps its socket would otherwise keep sending to the endpoint it got until the entry
 * times out. A terminating endpoint that still serves keeps its UDP flows. TCP connections are left
 * alone, as kube-proxy leaves them: they end on their own.
 */
final class ServiceNat implements AutoCloseable {
    private static final String TABLE = "cluster_ip";
    private static final Pattern PACKETS = Pattern.compile("counter packets (\\d+)");

    private final NetworkNamespace namespace;
    private final String clusterIp;
    private final int port;
    private final int targetPort;
    private Set<String> serving = Set.of();

    private ServiceNat(NetworkNamespace namespace, String clusterIp, int port, int targetPort) {
        this.namespace = namespace;
        this.clusterIp = clusterIp;
        this.port = port;
        this.targetPort = targetPort;
    }

    /**
     * Installs the Service's rules with no endpoint yet: nothing listens on the ClusterIP, so a
     * client is refused. One Service at a time in a namespace: the rules have a fixed table name.
     */
    static ServiceNat install(NetworkNamespace namespace, String clusterIp, int port, int targetPort)
            throws IOException, InterruptedException {
        ServiceNat service = new ServiceNat(namespace, clusterIp, port, targetPort);
        service.apply("""
                table ip %1$s {
                  chain output {
                    type nat hook output priority -100; policy accept;
                    ip daddr %2$s meta l4proto { tcp, udp } th dport %3$d goto endpoints
                  }
                  chain endpoints {
                  }
                  # An answer that leaves an endpoint as a new flow: its query's flow was deleted
                  # while the query was in flight, so the answer is not rewritten back to the
                  # ClusterIP. A client that checks where its answer comes from (a connected socket)
                  # drops it; dnsperf reads its socket without checking, and counts it answered.
                  chain stray_answers {
                    type filter hook output priority 0; policy accept;
                    udp sport %4$d ct direction original counter
                  }
                }
                """.formatted(TABLE, clusterIp, port, targetPort));
        return service;
    }

    String clusterIp() {
        return clusterIp;
    }

    int port() {
        return port;
    }

    /**
     * Sends new flows to the {@code ready} endpoints from now on, replacing the map in one nftables
     * transaction (a flow never sees a half-written map), then deletes the UDP flows of the
     * endpoints that are no longer {@code serving}. No ready endpoint: the ClusterIP refuses, as
     * kube-proxy's reject rule does.
     */
    synchronized void route(List<String> ready, Set<String> serving) throws IOException, InterruptedException {
        StringBuilder transaction = new StringBuilder("flush chain ip " + TABLE + " endpoints\n");
        if (!ready.isEmpty()) {
            List<String> map = new ArrayList<>();
            for (int i = 0; i < ready.size(); i++) {
                map.add(i + " : " + ready.get(i));
            }
            transaction.append("add rule ip ").append(TABLE).append(" endpoints meta l4proto { tcp, udp } dnat to numgen random mod ")
                    .append(ready.size()).append(" map { ").append(String.join(", ", map)).append(" } : ")
                    .append(targetPort).append('\n');
        }
        apply(transaction.toString());
        for (String left : this.serving) {
            if (!serving.contains(left)) {
                forgetUdpFlows(left);
            }
        }
        this.serving = Set.copyOf(serving);
    }

    private void forgetUdpFlows(String endpoint) throws IOException, InterruptedException {
        NetworkNamespace.Output deleted = namespace.execute("conntrack", "-D", "-p", "udp",
                "--orig-dst", clusterIp, "--orig-port-dst", String.valueOf(port), "--reply-src", endpoint);
        // conntrack -D exits 1 when no entry matched: nothing to delete is no failure
        if (!deleted.text().contains("flow entries have been deleted")) {
            throw new IOException("conntrack -D failed (" + deleted.exitCode() + "): " + deleted.text());
        }
    }

    /** Answers that reached a client without their source rewritten back to the ClusterIP (see {@link #install}). */
    long strayAnswers() throws IOException, InterruptedException {
        Matcher packets = PACKETS.matcher(namespace.run("nft", "list", "chain", "ip", TABLE, "stray_answers"));
        if (!packets.find()) {
            throw new IOException("no counter in the stray_answers chain");
        }
        return Long.parseLong(packets.group(1));
    }

    /** Deletes the Service's rules and its flows. */
    @Override
    public void close() throws IOException, InterruptedException {
        namespace.run("nft", "delete", "table", "ip", TABLE);
        namespace.execute("conntrack", "-D", "--orig-dst", clusterIp); // exits 1 when there was none
    }

    private void apply(String rules) throws IOException, InterruptedException {
        Path file = Files.createTempFile("dotproxy-service", ".nft");
        try {
            Files.writeString(file, rules);
            namespace.run("nft", "-f", file.toString());
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
