package io.dotproxy.it;

import java.time.Duration;
import java.time.LocalTime;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The kubelet's readiness probes, the EndpointSlice controller and kube-proxy's sync in one loop.
 * Every {@code period} it asks each pod's {@code /q/health/ready} (with curl, inside the namespace:
 * the test JVM is outside it) and gives each pod the conditions an EndpointSlice gives it:
 * <ul>
 *   <li><em>serving</em>: its readiness probe passes; it turns false after {@link #FAILURE_THRESHOLD}
 *       failures in a row (a refused connection, a timeout or a 503), true after one success;
 *   <li><em>terminating</em>: the pod is being deleted ({@link #terminating}, at its SIGTERM);
 *   <li><em>ready</em>: serving and not terminating.
 * </ul>
 * and hands the Service the ready ones (for new flows) and the serving ones (whose UDP flows
 * stay), as kube-proxy reads them. When no endpoint is ready kube-proxy falls back to the serving
 * terminating ones (KEP-1669); a rolling update with {@code maxUnavailable: 0} never gets there,
 * and this loop does not model it.
 *
 * <p>The period is the lag between a pod's change and the rules on the node: the kubelet's probe
 * period, the EndpointSlice update and kube-proxy's sync (at most one a second,
 * {@code minSyncPeriod}). A replica's drain delay must cover the time until it is neither ready
 * nor serving: up to {@code period × FAILURE_THRESHOLD} here, {@code periodSeconds ×
 * failureThreshold} plus a sync in a cluster.
 */
final class EndpointsController implements AutoCloseable {
    /** The manifests' readinessProbe.failureThreshold. */
    static final int FAILURE_THRESHOLD = 2;

    /** What the loop knows of one pod. */
    private static final class Pod {
        final String readinessUrl;
        volatile boolean terminating;
        boolean serving;
        int failures;

        Pod(String readinessUrl) {
            this.readinessUrl = readinessUrl;
        }
    }

    private final NetworkNamespace namespace;
    private final ServiceNat service;
    private final Duration period;
    private final Map<String, Pod> pods = new LinkedHashMap<>();
    private final List<String> history = new CopyOnWriteArrayList<>();
    private final Thread loop;
    private volatile Set<String> ready = Set.of();
    private volatile Exception failure;

    EndpointsController(NetworkNamespace namespace, ServiceNat service, Duration period) {
        this.namespace = namespace;
        this.service = service;
        this.period = period;
        this.loop = new Thread(this::run, "endpoints-controller");
        loop.setDaemon(true);
        loop.start();
    }

    /** A new pod of the Service: its address and where its readiness is asked. Not ready until its probe passes. */
    synchronized void watch(String address, String readinessUrl) {
        pods.put(address, new Pod(readinessUrl));
    }

    /** The pod is being deleted (its SIGTERM is sent now): not ready from the next sync on, serving while its probe passes. */
    synchronized void terminating(String address) {
        pods.get(address).terminating = true;
    }

    /** The pod is gone: out of the endpoints from the next sync on. */
    synchronized void forget(String address) {
        pods.remove(address);
    }

    /**
     * Whether {@code address} is a ready endpoint now: its probe passed and the Service sends it new
     * flows (the kubelet's Ready condition and kube-proxy's rules are one step here).
     */
    boolean isReady(String address) {
        failIfBroken();
        return ready.contains(address);
    }

    /** Each change of the endpoints, with the time of day (as the proxies' logs have it). */
    List<String> history() {
        return List.copyOf(history);
    }

    /** Throws what stopped the loop, if it stopped. */
    void failIfBroken() {
        if (failure != null) {
            throw new IllegalStateException("the endpoints controller stopped", failure);
        }
    }

    private void run() {
        try {
            Set<String> serving = Set.of();
            while (!Thread.currentThread().isInterrupted()) {
                long next = System.nanoTime() + period.toNanos();
                probe();
                Set<String> nowReady = new TreeSet<>();
                Set<String> nowServing = new TreeSet<>();
                synchronized (this) {
                    pods.forEach((address, pod) -> {
                        if (pod.serving) {
                            nowServing.add(address);
                            if (!pod.terminating) {
                                nowReady.add(address);
                            }
                        }
                    });
                }
                if (!nowReady.equals(ready) || !nowServing.equals(serving)) {
                    service.route(new ArrayList<>(nowReady), nowServing);
                    ready = Set.copyOf(nowReady);
                    serving = Set.copyOf(nowServing);
                    history.add(LocalTime.now().truncatedTo(ChronoUnit.MILLIS) + " ready " + nowReady + " serving " + nowServing);
                }
                long wait = next - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
            }
        } catch (InterruptedException stopped) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            failure = e;
        }
    }

    /** Asks every pod's readiness at once (one curl) and counts each pod's successes and failures. */
    private void probe() throws Exception {
        Map<String, Pod> asked;
        synchronized (this) {
            asked = new LinkedHashMap<>(pods);
        }
        if (asked.isEmpty()) {
            return;
        }
        // The kubelet's probe timeout is 2 s in the manifests; it must stay below the period here.
        List<String> curl = new ArrayList<>(List.of("curl", "--silent", "--no-progress-meter", "--parallel",
                "--parallel-immediate", "--max-time", "0.9", "--write-out", "%{url} %{http_code}\\n"));
        for (Pod pod : asked.values()) {
            curl.add("--output");
            curl.add("/dev/null");
            curl.add(pod.readinessUrl);
        }
        String answers = namespace.execute(curl.toArray(String[]::new)).text();
        synchronized (this) {
            for (Pod pod : asked.values()) {
                if (answers.contains(pod.readinessUrl + " 200\n")) {
                    pod.failures = 0;
                    pod.serving = true;
                } else if (++pod.failures >= FAILURE_THRESHOLD) {
                    pod.serving = false;
                }
            }
        }
    }

    @Override
    public void close() throws InterruptedException {
        loop.interrupt();
        loop.join(10_000);
    }
}
