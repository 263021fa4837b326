package io.dotproxy.it;

import io.dotproxy.testing.Eventually;
import java.time.Duration;
import java.time.LocalTime;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The endpoints controller and kube-proxy's sync in one loop: every {@code period} it asks each
 * pod's {@code /q/health/ready} (with curl, inside the namespace: the test JVM is outside it) and,
 * when the ready set changed, hands it to the {@link ServiceNat}.
 *
 * <p>The period is the lag a real cluster has between a pod turning unready and the last node's
 * rules forgetting it: the kubelet's probe, the EndpointSlice update and kube-proxy's sync (at most
 * one a second, {@code minSyncPeriod}) add up to a second or more. A replica's drain delay must
 * cover that lag; a period much shorter than a real cluster's would let a replica that stops at
 * once get away with it.
 */
final class EndpointsController implements AutoCloseable {
    private final NetworkNamespace namespace;
    private final ServiceNat service;
    private final Duration period;
    private final Map<String, String> readinessByAddress = Collections.synchronizedMap(new LinkedHashMap<>());
    private final List<String> history = new CopyOnWriteArrayList<>();
    private final Thread loop;
    private volatile Set<String> endpoints = Set.of();
    private volatile Exception failure;

    EndpointsController(NetworkNamespace namespace, ServiceNat service, Duration period) {
        this.namespace = namespace;
        this.service = service;
        this.period = period;
        this.loop = new Thread(this::run, "endpoints-controller");
        loop.setDaemon(true);
        loop.start();
    }

    /** A pod of the Service: its address and where its readiness is asked. */
    void watch(String address, String readinessUrl) {
        readinessByAddress.put(address, readinessUrl);
    }

    /** The pod is gone (deleted): it is not asked any more. */
    void forget(String address) {
        readinessByAddress.remove(address);
    }

    /** The endpoints the Service routes new flows to now. */
    Set<String> endpoints() {
        return endpoints;
    }

    /** Whether {@code address} is among the Service's endpoints within {@code within}. */
    boolean awaitEndpoint(String address, Duration within) throws Exception {
        return Eventually.holds(within, Duration.ofMillis(50), () -> {
            failIfBroken();
            return endpoints.contains(address);
        });
    }

    /** Each change of the endpoints, with the time of day (as the proxies' logs have it). */
    List<String> history() {
        return List.copyOf(history);
    }

    /** Throws what stopped the loop, if it stopped. */
    void failIfBroken() throws Exception {
        if (failure != null) {
            throw new IllegalStateException("the endpoints controller stopped", failure);
        }
    }

    private void run() {
        try {
            while (!Thread.currentThread().isInterrupted()) {
                long next = System.nanoTime() + period.toNanos();
                Set<String> ready = ready();
                if (!ready.equals(endpoints)) {
                    service.route(new ArrayList<>(ready));
                    endpoints = Set.copyOf(ready);
                    history.add(LocalTime.now().truncatedTo(ChronoUnit.MILLIS) + " " + ready);
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

    /** The pods whose readiness answers 200 now; one curl asks them all at once. */
    private Set<String> ready() throws Exception {
        Map<String, String> pods;
        synchronized (readinessByAddress) {
            pods = new LinkedHashMap<>(readinessByAddress);
        }
        Set<String> ready = new TreeSet<>();
        if (pods.isEmpty()) {
            return ready;
        }
        // A probe's timeout, as the kubelet's (timeoutSeconds: 1): a pod that does not answer is not ready.
        List<String> curl = new ArrayList<>(List.of("curl", "--silent", "--no-progress-meter", "--parallel",
                "--parallel-immediate", "--max-time", "1", "--write-out", "%{url} %{http_code}\\n"));
        for (String url : pods.values()) {
            curl.add("--output");
            curl.add("/dev/null");
            curl.add(url);
        }
        String answers = namespace.execute(curl.toArray(String[]::new)).text();
        pods.forEach((address, url) -> {
            if (answers.contains(url + " 200\n")) {
                ready.add(address);
            }
        });
        return ready;
    }

    @Override
    public void close() throws InterruptedException {
        loop.interrupt();
        loop.join(10_000);
    }
}
