package io.dotproxy.it;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The pods of one Deployment of the packaged proxy, in the test's namespace: each replica has a
 * loopback address of its own, as a pod has its IP, with DNS on {@link #DNS_PORT} (the
 * container port the manifests' Service targets) and health and metrics on {@link #HTTP_PORT}.
 * Every replica is watched by the {@link EndpointsController}.
 */
final class ProxyDeployment implements AutoCloseable {
    static final int DNS_PORT = 5353;
    static final int HTTP_PORT = 8080;
    /**
     * Not the image's flags: a JVM that compiles with C1 only starts in about half the time
     * on two shared cores, which keeps a roll of three replicas short; a proxy's drain is the same.
     */
    private static final List<String> JVM_OPTIONS = List.of("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx64m");
    private static final Pattern QUERIES = Pattern.compile("dotproxy_server_queries_total\\{proto=\"(udp|tcp)\"} (\\d+)");

    /** Queries a replica received, by transport, as its metrics said when last read. */
    record Traffic(long udp, long tcp) {}

    /** One pod: a packaged proxy on its own address. */
    final class Replica {
        private final String address;
        private final ProxyProcess process;
        private Traffic traffic = new Traffic(0, 0);

        private Replica(String address, ProxyProcess process) {
            this.address = address;
            this.process = process;
        }

        String address() {
            return address;
        }

        private String url(String path) {
            return "http://" + address + ":" + HTTP_PORT + path;
        }

        /** Waits for the pod's Ready condition, as the Deployment controller does; fails at once if the proxy exits. */
        private void awaitReady() throws Exception {
            process.awaitReady(() -> endpoints.isReady(address));
        }

        private void readTraffic() throws IOException, InterruptedException {
            Map<String, Long> byTransport = new LinkedHashMap<>();
            Matcher counter = QUERIES.matcher(namespace.run("curl", "--silent", "--max-time", "5", url("/q/metrics")));
            while (counter.find()) {
                byTransport.put(counter.group(1), Long.parseLong(counter.group(2)));
            }
            traffic = new Traffic(byTransport.getOrDefault("udp", 0L), byTransport.getOrDefault("tcp", 0L));
        }

        String log() throws IOException {
            return process.output();
        }
    }

    private final NetworkNamespace namespace;
    private final Path dir;
    private final Map<String, String> settings;
    private final Map<String, String> environment;
    private final EndpointsController endpoints;
    private final List<Replica> replicas = new ArrayList<>();
    private final List<Replica> running = new ArrayList<>();
    private int nextHost;

    /**
     * @param firstHost the last octet of the first replica's address in 127.0.0.0/24; each new replica takes the next
     * @param settings {@code -D} properties of every replica (listen address and ports are added)
     * @param environment environment variables of every replica, as the pod template's {@code env}
     */
    ProxyDeployment(NetworkNamespace namespace, Path dir, int firstHost, Map<String, String> settings,
                    Map<String, String> environment, EndpointsController endpoints) {
        this.namespace = namespace;
        this.dir = dir;
        this.nextHost = firstHost;
        this.settings = Map.copyOf(settings);
        this.environment = Map.copyOf(environment);
        this.endpoints = endpoints;
    }

    /** Starts {@code count} replicas at once and waits until each is ready. */
    void scaleUp(int count) throws Exception {
        List<Replica> started = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            started.add(start());
        }
        for (Replica replica : started) {
            replica.awaitReady();
        }
    }

    /**
     * Replaces every running replica, one at a time, as the Deployment controller does with
     * {@code maxSurge: 1, maxUnavailable: 0}: a new replica starts; once it is ready one old
     * replica is deleted, which marks its endpoint terminating and sends it SIGTERM; a terminating
     * pod no longer counts against the surge, so the next new replica starts at once, while the
     * old one drains. Every old replica must then exit within {@code gracePeriod}
     * ({@code terminationGracePeriodSeconds}), after which the kubelet would kill it.
     */
    void rollingUpdate(Duration gracePeriod) throws Exception {
        List<Replica> outgoing = List.copyOf(running);
        for (Replica old : outgoing) {
            Replica incoming = start();
            incoming.awaitReady();
            old.readTraffic();
            endpoints.terminating(old.address);
            old.process.terminate();
            running.remove(old);
        }
        for (Replica old : outgoing) {
            old.process.awaitExit(gracePeriod);
            endpoints.forget(old.address);
        }
    }

    /** Each replica ever started, by address, with the queries it received (a terminated one's as read before its SIGTERM). */
    Map<String, Traffic> traffic() throws IOException, InterruptedException {
        for (Replica replica : running) {
            replica.readTraffic();
        }
        Map<String, Traffic> traffic = new LinkedHashMap<>();
        for (Replica replica : replicas) {
            traffic.put(replica.address, replica.traffic);
        }
        return traffic;
    }

    List<Replica> replicas() {
        return List.copyOf(replicas);
    }

    private Replica start() throws IOException {
        String address = "127.0.0." + nextHost++;
        Map<String, String> properties = new LinkedHashMap<>(settings);
        properties.put("dotproxy.listen.host", address);
        properties.put("dotproxy.listen.port", String.valueOf(DNS_PORT));
        properties.put("quarkus.http.host", address);
        properties.put("quarkus.http.port", String.valueOf(HTTP_PORT));
        Replica replica = new Replica(address, ProxyProcess.start(dir, namespace, JVM_OPTIONS, properties, environment));
        replicas.add(replica);
        running.add(replica);
        endpoints.watch(address, replica.url("/q/health/ready"));
        return replica;
    }

    /** Stops every replica still running (SIGTERM to all at once, then SIGKILL to any left after 10 s) and forgets it. */
    @Override
    public void close() throws InterruptedException {
        for (Replica replica : replicas) {
            replica.process.terminate();
        }
        for (Replica replica : replicas) {
            replica.process.close();
            endpoints.forget(replica.address);
        }
    }
}
