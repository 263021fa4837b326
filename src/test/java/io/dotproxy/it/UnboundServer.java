package io.dotproxy.it;

import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Debian's unbound, run as a real DNS-over-TLS resolver on loopback: it serves a small static
 * zone {@code test.} with a certificate from a {@link TestCa}, and nothing else (no recursion).
 * With {@link Options#countQueries()} its remote control listens on a unix socket, and
 * {@link #queries()} reads unbound's own count of the queries it received.
 */
final class UnboundServer implements AutoCloseable {
    /** The name in the resolver's certificate. */
    static final String TLS_NAME = "dns.test";
    /** TXT records in {@code big.test}: about 2 KB, more than any UDP client gets here. */
    static final int BIG_RECORDS = 10;

    private static final Pattern TOTAL_QUERIES = Pattern.compile("(?m)^total\\.num\\.queries=(\\d+)$");

    /**
     * What a test adds to the default resolver.
     *
     * @param noDelay see {@link #start(TestCa, Path, int, boolean)}
     * @param countQueries enable unbound's remote control on a unix socket in the run's directory,
     *     for {@link #queries()}
     * @param localData more records of the zone, each as unbound's {@code local-data} takes it,
     *     e.g. {@code "ttl.test. 3600 IN A 192.0.2.1"} (names under {@code test.}, no double quotes)
     */
    record Options(boolean noDelay, boolean countQueries, List<String> localData) {
        static final Options DEFAULT = new Options(false, false, List.of());
    }

    private final Process process;
    private final int port;
    private final Path log;
    private final Path config;
    private final boolean countQueries;

    private UnboundServer(Process process, int port, Path log, Path config, boolean countQueries) {
        this.process = process;
        this.port = port;
        this.log = log;
        this.config = config;
        this.countQueries = countQueries;
    }

    static UnboundServer start(TestCa ca, Path dir, int port) throws Exception {
        return start(ca, dir, port, Options.DEFAULT);
    }

    /**
     * @param noDelay run it with the benchmark's shim ({@code bench/nodelay.c}) that sets
     *     TCP_NODELAY on accepted connections: Debian's unbound does not, so its answers can wait
     *     for the proxy's delayed ACK (~40 ms), which a latency test would measure instead of the proxy
     */
    static UnboundServer start(TestCa ca, Path dir, int port, boolean noDelay) throws Exception {
        return start(ca, dir, port, new Options(noDelay, false, List.of()));
    }

    static UnboundServer start(TestCa ca, Path dir, int port, Options options) throws Exception {
        return start(ca, dir, port, options, Network.HOST);
    }

    /** Starts unbound in {@code network} (listening on its 127.0.0.1). */
    static UnboundServer start(TestCa ca, Path dir, int port, Options options, Network network) throws Exception {
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
        for (String record : options.localData()) {
            if (record.contains("\"")) {
                throw new IllegalArgumentException("no double quotes in local-data: " + record);
            }
            zone.append("  local-data: \"").append(record).append("\"\n");
        }
        String remoteControl = "  control-enable: no\n";
        if (options.countQueries()) {
            // A unix socket needs no certificates (control-use-cert applies to TCP only) and no port.
            Path socket = dir.resolve("unbound-control.sock");
            if (socket.toString().length() > 100) {
                throw new IOException("unix socket path too long for unbound: " + socket);
            }
            remoteControl = """
                      control-enable: yes
                      control-interface: "%s"
                      control-use-cert: no
                    """.formatted(socket);
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
                %6$s""".formatted(port, key, cert, dir, zone, remoteControl));
        Path log = dir.resolve("unbound.log");
        ProcessBuilder builder = new ProcessBuilder(network.command(List.of(executable(), "-d", "-c", config.toString())))
                .redirectErrorStream(true).redirectOutput(log.toFile());
        if (options.noDelay()) {
            builder.environment().put("LD_PRELOAD", compileNoDelayShim(dir).toString());
        }
        Process process = builder.start();
        UnboundServer server = new UnboundServer(process, port, log, config, options.countQueries());
        server.awaitListening(network);
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
        return executable("unbound");
    }

    private static String executable(String name) {
        for (String directory : List.of("/usr/sbin/", "/usr/local/sbin/")) {
            if (Files.isExecutable(Path.of(directory + name))) {
                return directory + name;
            }
        }
        return name; // from PATH; a missing binary fails the test with a clear IOException
    }

    /**
     * The number of queries unbound has received since it started, from its own statistics
     * ({@code unbound-control stats_noreset}, {@code total.num.queries}): every query, over every
     * transport, whether answered from its local zone or not. Needs {@link Options#countQueries()}.
     */
    long queries() throws IOException, InterruptedException {
        if (!countQueries) {
            throw new IllegalStateException("started without countQueries: no remote control to ask");
        }
        Path out = Files.createTempFile(config.getParent(), "unbound-stats", ".txt");
        try {
            Process control = new ProcessBuilder(executable("unbound-control"), "-c", config.toString(), "stats_noreset")
                    .redirectErrorStream(true).redirectOutput(out.toFile()).start();
            if (!control.waitFor(15, TimeUnit.SECONDS)) {
                control.destroyForcibly();
                throw new IOException("unbound-control did not finish: " + Files.readString(out));
            }
            String stats = Files.readString(out);
            Matcher total = TOTAL_QUERIES.matcher(stats);
            if (control.exitValue() != 0 || !total.find()) {
                throw new IOException("unbound-control stats_noreset failed (" + control.exitValue() + "): " + stats
                        + "\nunbound's log: " + Files.readString(log));
            }
            return Long.parseLong(total.group(1));
        } finally {
            Files.deleteIfExists(out);
        }
    }

    private void awaitListening(Network network) throws Exception {
        boolean listening = Eventually.holds(Duration.ofSeconds(15), Duration.ofMillis(100), () -> {
            if (!process.isAlive()) {
                throw new IOException("unbound exited: " + Files.readString(log));
            }
            return network.acceptsTcp("127.0.0.1", port);
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
