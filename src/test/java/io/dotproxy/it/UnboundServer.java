package io.dotproxy.it;

import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Debian's unbound, run as a real DNS-over-TLS resolver on loopback: it serves a small static
 * zone {@code test.} with a certificate from a {@link TestCa}, and nothing else (no recursion).
 */
final class UnboundServer implements AutoCloseable {
    /** The name in the resolver's certificate. */
    static final String TLS_NAME = "dns.test";
    /** TXT records in {@code big.test}: about 2 KB, more than any UDP client gets here. */
    static final int BIG_RECORDS = 10;

    private final Process process;
    private final int port;
    private final Path log;

    private UnboundServer(Process process, int port, Path log) {
        this.process = process;
        this.port = port;
        this.log = log;
    }

    static UnboundServer start(TestCa ca, Path dir, int port) throws Exception {
        return start(ca, dir, port, false);
    }

    /**
     * @param noDelay run it with the benchmark's shim ({@code bench/nodelay.c}) that sets
     *     TCP_NODELAY on accepted connections: Debian's unbound does not, so its answers can wait
     *     for the proxy's delayed ACK (~40 ms), which a latency test would measure instead of the proxy
     */
    static UnboundServer start(TestCa ca, Path dir, int port, boolean noDelay) throws Exception {
        TestCa.Issued certificate = ca.issue(List.of(TLS_NAME), List.of("127.0.0.1"));
        Path cert = dir.resolve("unbound.pem");
        Path key = dir.resolve("unbound.key");
        certificate.writePem(cert, key);
        StringBuilder zone = new StringBuilder();
        zone.append("  local-zone: \"test.\" static\n");
        zone.append("  local-data: \"a.test. 300 IN A 192.0.2.1\"\n");
        zone.append("  local-data: \"a.test. 300 IN AAAA 2001:db8::1\"\n");
        for (int i = 0; i < BIG_RECORDS; i++) {
            zone.append("  local-data: 'big.test. 300 IN TXT \"").append(i).append("y".repeat(200)).append("\"'\n");
        }
        Path config = dir.resolve("unbound.conf");
        Files.writeString(config, """
                server:
                  interface: 127.0.0.1@%1$d
                  tls-port: %1$d
                  tls-service-key: "%2$s"
                  tls-service-pem: "%3$s"
                  do-daemonize: no
                  username: ""
                  chroot: ""
                  directory: "%4$s"
                  pidfile: ""
                  use-syslog: no
                  logfile: ""
                  verbosity: 1
                  access-control: 127.0.0.0/8 allow
                  do-not-query-localhost: yes
                %5$s
                remote-control:
                  control-enable: no
                """.formatted(port, key, cert, dir, zone));
        Path log = dir.resolve("unbound.log");
        ProcessBuilder builder = new ProcessBuilder(executable(), "-d", "-c", config.toString())
                .redirectErrorStream(true).redirectOutput(log.toFile());
        if (noDelay) {
            builder.environment().put("LD_PRELOAD", compileNoDelayShim(dir).toString());
        }
        Process process = builder.start();
        UnboundServer server = new UnboundServer(process, port, log);
        server.awaitListening();
        return server;
    }

    private static Path compileNoDelayShim(Path dir) throws Exception {
        Path shim = dir.resolve("nodelay.so");
        Process gcc = new ProcessBuilder("gcc", "-shared", "-fPIC", "-O2", "-o", shim.toString(),
                Path.of("bench", "nodelay.c").toString(), "-ldl").redirectErrorStream(true).start();
        String output = new String(gcc.getInputStream().readAllBytes());
        if (gcc.waitFor() != 0) {
            throw new IOException("gcc could not build the TCP_NODELAY shim: " + output);
        }
        return shim;
    }

    private static String executable() {
        for (String candidate : List.of("/usr/sbin/unbound", "/usr/local/sbin/unbound")) {
            if (Files.isExecutable(Path.of(candidate))) {
                return candidate;
            }
        }
        return "unbound"; // from PATH; a missing binary fails the test with a clear IOException
    }

    private void awaitListening() throws Exception {
        boolean listening = Eventually.holds(Duration.ofSeconds(15), Duration.ofMillis(100), () -> {
            if (!process.isAlive()) {
                throw new IOException("unbound exited: " + Files.readString(log));
            }
            try (Socket probe = new Socket(InetAddress.getLoopbackAddress(), port)) {
                return true;
            } catch (IOException notYet) {
                return false;
            }
        });
        if (!listening) {
            throw new IOException("unbound did not listen on port " + port + ": " + Files.readString(log));
        }
    }

    int port() {
        return port;
    }

    @Override
    public void close() {
        process.destroy();
    }
}
