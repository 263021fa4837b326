package io.dotproxy.it;

import io.dotproxy.testing.Eventually;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The packaged proxy ({@code target/quarkus-app/quarkus-run.jar}) run as its own process. It stops
 * at once on SIGTERM (drain delay 0s) unless the test sets {@code dotproxy.shutdown.drain-delay}
 * (or {@code DOTPROXY_SHUTDOWN_DRAIN_DELAY}) itself.
 */
final class ProxyProcess implements AutoCloseable {
    static final Path JAR = Path.of("target", "quarkus-app", "quarkus-run.jar");

    private final Process process;
    private final Path log;

    private ProxyProcess(Process process, Path log) {
        this.process = process;
        this.log = log;
    }

    /** Starts the jar with {@code -D} properties and extra environment variables. */
    static ProxyProcess start(Path dir, Map<String, String> properties, Map<String, String> environment)
            throws IOException {
        return start(dir, List.of(), properties, environment);
    }

    /** Starts the jar with JVM options, {@code -D} properties and extra environment variables. */
    static ProxyProcess start(Path dir, List<String> jvmOptions, Map<String, String> properties,
                              Map<String, String> environment) throws IOException {
        return start(dir, Network.HOST, jvmOptions, properties, environment);
    }

    /** Starts the jar in {@code network}, with JVM options, {@code -D} properties and extra environment variables. */
    static ProxyProcess start(Path dir, Network network, List<String> jvmOptions, Map<String, String> properties,
                              Map<String, String> environment) throws IOException {
        if (!Files.isRegularFile(JAR)) {
            throw new IOException(JAR + " is missing: run the package phase first (./mvnw verify)");
        }
        List<String> command = new ArrayList<>();
        command.add(java());
        command.addAll(jvmOptions);
        properties.forEach((key, value) -> command.add("-D" + key + "=" + value));
        command.add("-jar");
        command.add(JAR.toString());
        Path log = Files.createTempFile(dir, "proxy", ".log");
        ProcessBuilder builder = new ProcessBuilder(network.command(command)).redirectErrorStream(true).redirectOutput(log.toFile());
        builder.environment().put("DOTPROXY_SHUTDOWN_DRAIN_DELAY", "0s"); // -D and the test's own variables win
        builder.environment().putAll(environment);
        return new ProxyProcess(builder.start(), log);
    }

    /** The java launcher of the JVM running the tests. */
    static String java() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    /** Waits until {@code /q/health/ready} on 127.0.0.1 answers 200. */
    void awaitReady(int httpPort) throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
        HttpRequest ready = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + "/q/health/ready"))
                .timeout(Duration.ofSeconds(2)).build();
        awaitReady(() -> {
            try {
                return client.send(ready, HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
            } catch (IOException notYet) {
                return false; // not listening yet
            }
        });
    }

    /** Waits until {@code isReady} holds, failing at once if the proxy exits. */
    void awaitReady(Eventually.Attempt<Boolean> isReady) throws Exception {
        boolean ready = Eventually.holds(Duration.ofSeconds(30), Duration.ofMillis(100), () -> {
            if (!process.isAlive()) {
                throw new IOException("proxy exited with " + process.exitValue() + ": " + output());
            }
            return isReady.get();
        });
        if (!ready) {
            throw new IOException("proxy not ready in time: " + output());
        }
    }

    /** Sends SIGTERM (what {@link Process#destroy()} sends on Linux) and returns at once: the proxy drains, then exits. */
    void terminate() {
        process.destroy();
    }

    /** Waits for the process to end on its own; its exit code. */
    int awaitExit(Duration limit) throws InterruptedException, IOException {
        if (!process.waitFor(limit.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new IOException("proxy still running after " + limit + ": " + output());
        }
        return process.exitValue();
    }

    /** The process ID, to read the proxy's own state under /proc or to attach jcmd. */
    long pid() {
        return process.pid();
    }

    String output() throws IOException {
        return Files.readString(log);
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        process.waitFor(10, TimeUnit.SECONDS);
        if (process.isAlive()) {
            process.destroyForcibly();
        }
    }
}
