package io.dotproxy.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * A bounded dnsperf load: at most {@code -l} seconds at a fixed rate, stopped earlier with SIGINT
 * (dnsperf then ends the run and prints its report, queries still outstanding counted as
 * "interrupted", neither answered nor lost).
 */
final class DnsperfLoad implements AutoCloseable {
    private static final Pattern RCODE = Pattern.compile("([A-Z]+) (\\d+) \\(");

    /**
     * What dnsperf reported.
     *
     * @param lost queries that got no answer within dnsperf's timeout
     * @param rcodes answers by response code
     */
    record Report(long sent, long completed, long lost, long interrupted, Map<String, Long> rcodes, String text) {
        /** Answers other than NOERROR. */
        long failed() {
            return completed - rcodes.getOrDefault("NOERROR", 0L);
        }

        /** The report without its line per timed-out query. */
        String summary() {
            return text.lines().filter(line -> !line.startsWith("[Timeout]")).collect(Collectors.joining("\n"));
        }
    }

    private final Process process;
    private final Path output;

    private DnsperfLoad(Process process, Path output) {
        this.process = process;
        this.output = output;
    }

    /**
     * Starts dnsperf in {@code network}.
     *
     * @param arguments its options after the server, port and query file, e.g. {@code -m tcp -Q 200}
     */
    static DnsperfLoad start(Network network, Path dir, String server, int port, Path queries, List<String> arguments)
            throws IOException {
        List<String> command = new ArrayList<>(List.of("dnsperf", "-s", server, "-p", String.valueOf(port),
                "-d", queries.toString()));
        command.addAll(arguments);
        Path output = Files.createTempFile(dir, "dnsperf", ".txt");
        Process process = new ProcessBuilder(network.command(command)).redirectErrorStream(true)
                .redirectOutput(output.toFile()).start();
        return new DnsperfLoad(process, output);
    }

    /** Stops the load now (SIGINT) and returns dnsperf's report. */
    Report stop() throws IOException, InterruptedException {
        if (process.isAlive()) {
            new ProcessBuilder("kill", "-INT", String.valueOf(process.pid())).start().waitFor();
        }
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            throw new IOException("dnsperf did not stop: " + Files.readString(output));
        }
        String text = Files.readString(output);
        Map<String, Long> rcodes = new LinkedHashMap<>();
        Matcher line = Pattern.compile("Response codes:\\s+(.*)").matcher(text);
        if (line.find()) {
            Matcher rcode = RCODE.matcher(line.group(1));
            while (rcode.find()) {
                rcodes.put(rcode.group(1), Long.parseLong(rcode.group(2)));
            }
        }
        return new Report(number(text, "Queries sent"), number(text, "Queries completed"), number(text, "Queries lost"),
                text.contains("Queries interrupted") ? number(text, "Queries interrupted") : 0, rcodes, text);
    }

    private static long number(String text, String label) throws IOException {
        Matcher matcher = Pattern.compile(label + ":\\s+(\\d+)").matcher(text);
        if (!matcher.find()) {
            throw new IOException("no \"" + label + "\" in dnsperf's report: " + text);
        }
        return Long.parseLong(matcher.group(1));
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        process.waitFor(10, TimeUnit.SECONDS);
    }
}
