package io.dotproxy.it;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A network namespace of the test's own ({@code ip netns}, so the test runs as root): a loopback
 * of its own with all of 127.0.0.0/8, its own nftables rules and its own conntrack table, so that
 * what the test programs there touches nothing else on the machine. Processes join it through
 * {@code ip netns exec}, which enters the namespace and then execs the command, so the process the
 * test holds is the command itself and {@link Process#destroy()} is a SIGTERM to it.
 */
final class NetworkNamespace implements Network, AutoCloseable {
    private static final String PREFIX = "dotproxy-it-";
    private static final Pattern LEFTOVER = Pattern.compile("(?m)^(" + PREFIX + "(\\d+)-\\d+)\\b");
    private static final AtomicInteger COUNT = new AtomicInteger();
    private static final Duration COMMAND_LIMIT = Duration.ofSeconds(30);

    /** What a command printed (stdout and stderr together) and how it ended. */
    record Output(int exitCode, String text) {}

    private final String name;

    private NetworkNamespace(String name) {
        this.name = name;
    }

    /**
     * Makes a namespace named after this JVM (so that runs side by side never share one) with its
     * loopback up. Namespaces left by test JVMs that no longer run (killed before their cleanup)
     * are deleted first.
     */
    static NetworkNamespace create() throws IOException, InterruptedException {
        deleteLeftovers();
        String name = PREFIX + ProcessHandle.current().pid() + "-" + COUNT.incrementAndGet();
        check(executeOnHost(List.of("ip", "netns", "add", name)), "ip netns add " + name);
        NetworkNamespace namespace = new NetworkNamespace(name);
        try {
            namespace.run("ip", "link", "set", "lo", "up");
        } catch (IOException | RuntimeException e) {
            namespace.close();
            throw e;
        }
        return namespace;
    }

    private static void deleteLeftovers() throws IOException, InterruptedException {
        Matcher leftover = LEFTOVER.matcher(executeOnHost(List.of("ip", "netns", "list")).text());
        while (leftover.find()) {
            if (ProcessHandle.of(Long.parseLong(leftover.group(2))).isEmpty()) {
                executeOnHost(List.of("ip", "netns", "delete", leftover.group(1)));
            }
        }
    }

    String name() {
        return name;
    }

    @Override
    public List<String> command(List<String> command) {
        List<String> inside = new ArrayList<>(List.of("ip", "netns", "exec", name));
        inside.addAll(command);
        return inside;
    }

    @Override
    public boolean acceptsTcp(String address, int port) throws IOException, InterruptedException {
        // bash's /dev/tcp connects and nothing more; `timeout` bounds a connect that hangs.
        return executeOnHost(command(List.of("timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/" + address + "/" + port)))
                .exitCode() == 0;
    }

    /** Runs a command in the namespace to its end (bounded); its output, whatever its exit code. */
    Output execute(String... command) throws IOException, InterruptedException {
        return executeOnHost(command(List.of(command)));
    }

    /** Runs a command in the namespace to its end (bounded); its output, or an exception if it failed. */
    String run(String... command) throws IOException, InterruptedException {
        return check(execute(command), String.join(" ", command)).text();
    }

    /** Runs a command as given (in the test's own network unless it says otherwise) to its end, within {@link #COMMAND_LIMIT}. */
    static Output executeOnHost(List<String> command) throws IOException, InterruptedException {
        Path out = Files.createTempFile("dotproxy-netns", ".out");
        try {
            Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(out.toFile()).start();
            if (!process.waitFor(COMMAND_LIMIT.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw new IOException(command + " did not end within " + COMMAND_LIMIT + ": " + Files.readString(out));
            }
            return new Output(process.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
        }
    }

    private static Output check(Output output, String what) throws IOException {
        if (output.exitCode() != 0) {
            throw new IOException(what + " failed (" + output.exitCode() + "): " + output.text());
        }
        return output;
    }

    /**
     * Deletes the namespace. Any process still in it was started by this test (the namespace is
     * its own) and is killed first, so that nothing keeps the namespace alive.
     */
    @Override
    public void close() throws IOException, InterruptedException {
        Output pids = executeOnHost(List.of("ip", "netns", "pids", name));
        for (String pid : pids.text().split("\\s+")) {
            if (pid.matches("\\d+")) {
                ProcessHandle.of(Long.parseLong(pid)).ifPresent(ProcessHandle::destroyForcibly);
            }
        }
        check(executeOnHost(List.of("ip", "netns", "delete", name)), "ip netns delete " + name);
    }
}
