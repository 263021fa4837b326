package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.TestCa;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ConnectException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDate;
import java.time.LocalTime;
import java.time.ZoneId;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Type;

/**
 * The packaged proxy, in front of unbound, gets a real SIGTERM under a steady load over UDP and
 * TCP (one persistent connection, reconnecting as a client does): readiness is down within a
 * second while the HTTP server still answers; every query sent before the listeners stop
 * accepting (which is no sooner than the drain delay) is answered, matched by its ID and question;
 * no query sent after that is answered, and no TCP connection is refused before it; the process
 * exits within drain delay + query deadline + a little. With a drain delay of 0 the stop is
 * immediate, and what was accepted is still answered.
 */
class DrainIT {
    /** {@code dotproxy.timeout}, the bound on a query in flight when the listeners stop accepting. */
    private static final Duration DEADLINE = Duration.ofSeconds(2);
    /** About 170 queries a second on each transport. */
    private static final long PACE_NANOS = TimeUnit.MILLISECONDS.toNanos(6);
    /** A query sent this close before the stop may not have been read yet: it proves nothing either way. */
    private static final long UNDECIDED_MILLIS = 100;
    private static final Pattern STOPPED_ACCEPTING =
            Pattern.compile("(?m)^(\\d\\d:\\d\\d:\\d\\d\\.\\d\\d\\d) .*Stopped accepting queries; (\\d+) in flight");

    @ParameterizedTest(name = "drain delay {0}s")
    @ValueSource(ints = {3, 0})
    void underLoadEveryQueryAcceptedBeforeTheListenersStopIsAnsweredAndNoneAfter(int drainDelaySeconds) throws Exception {
        Path dir = Files.createTempDirectory("dot-proxy-drain");
        TestCa ca = TestCa.create();
        Path caFile = ca.writePem(dir.resolve("ca.pem"));
        long delayMillis = TimeUnit.SECONDS.toMillis(drainDelaySeconds);
        int dns = DigAgainstUnboundIT.freePort();
        int http = DigAgainstUnboundIT.freePort();
        try (UnboundServer unbound = UnboundServer.start(ca, dir, DigAgainstUnboundIT.freePort());
             ProxyProcess proxy = ProxyProcess.start(dir, Map.of(
                     "dotproxy.listen.host", "127.0.0.1",
                     "dotproxy.listen.port", String.valueOf(dns),
                     "dotproxy.upstreams", "127.0.0.1:" + unbound.port() + "#" + UnboundServer.TLS_NAME,
                     "dotproxy.tls.ca-file", caFile.toString(),
                     "dotproxy.cache.enabled", "false", // every query goes upstream and is in flight a while
                     "dotproxy.timeout", DEADLINE.toMillis() + "ms",
                     "quarkus.http.port", String.valueOf(http),
                     "quarkus.http.host", "127.0.0.1"),
                     Map.of("DOTPROXY_SHUTDOWN_DRAIN_DELAY", drainDelaySeconds + "s"))) {
            proxy.awaitReady(http);
            try (UdpLoad udp = new UdpLoad(dns); TcpLoad tcp = new TcpLoad(dns)) {
                Thread.sleep(1000); // a steady stream before the signal

                long signalled = System.currentTimeMillis();
                proxy.terminate();
                if (drainDelaySeconds > 0) {
                    HttpResponse<String> ready = Eventually.retry(Duration.ofSeconds(1), Duration.ofMillis(20),
                            () -> readiness(http), response -> response != null && response.statusCode() == 503
                                    && response.body().contains("\"draining\": true"));
                    assertTrue(ready != null && ready.statusCode() == 503 && ready.body().contains("\"draining\": true"),
                            "not ready within a second of SIGTERM: " + (ready == null ? "no answer" : ready.body()));
                    Thread.sleep(Math.max(0, signalled + delayMillis / 2 - System.currentTimeMillis()));
                    HttpResponse<String> midway = readiness(http);
                    assertTrue(midway != null && midway.statusCode() == 503,
                            "the probes still get an answer, not a refused connection, while the proxy drains");
                }
                int exit = proxy.awaitExit(Duration.ofSeconds(30));
                long exited = System.currentTimeMillis();
                udp.stop();
                tcp.stop();

                String log = proxy.output();
                Matcher stop = STOPPED_ACCEPTING.matcher(log);
                assertTrue(stop.find(), log);
                long stoppedAt = LocalDate.now().atTime(LocalTime.parse(stop.group(1)))
                        .atZone(ZoneId.systemDefault()).toInstant().toEpochMilli();
                assertTrue(stoppedAt >= signalled + delayMillis - 10,
                        "served for the drain delay: stopped accepting " + (stoppedAt - signalled) + " ms after SIGTERM");
                assertTrue(stoppedAt <= signalled + delayMillis + 2000,
                        "and not much later: " + (stoppedAt - signalled) + " ms after SIGTERM");
                assertTrue(log.contains("Drained: every accepted query was answered"), log);
                assertTrue(exited - signalled < delayMillis + DEADLINE.toMillis() + 5000,
                        "exited " + (exited - signalled) + " ms after SIGTERM, within drain delay + deadline + a little");
                assertEquals(143, exit, "the exit status of a JVM ended by SIGTERM");

                for (Load load : List.of(udp, tcp)) {
                    load.assertConsistent(stoppedAt, signalled + delayMillis);
                }
                tcp.assertRefusedOnlyAfter(stoppedAt);
            }
        }
    }

    private static HttpResponse<String> readiness(int port) throws InterruptedException {
        try {
            return HttpClient.newBuilder().connectTimeout(Duration.ofMillis(500)).build().send(
                    HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/q/health/ready"))
                            .timeout(Duration.ofSeconds(1)).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException refused) {
            return null;
        }
    }

    /** A paced stream of queries, each with its own ID and name, and the answers matched to them. */
    private abstract static class Load implements AutoCloseable {
        private record Sent(String name, long atMillis) {}

        private final String transport;
        private final Map<Integer, Sent> sent = new ConcurrentHashMap<>();
        private final Map<Integer, Message> answers = new ConcurrentHashMap<>();
        private final List<String> problems = new CopyOnWriteArrayList<>();
        private final Thread sender;
        protected final int port;
        protected volatile boolean running = true;

        Load(String transport, int port) {
            this.transport = transport;
            this.port = port;
            this.sender = new Thread(this::send, transport + "-load");
            sender.setDaemon(true);
        }

        final void begin() {
            sender.start();
        }

        private void send() {
            long next = System.nanoTime();
            // Bounded in count as well as in time: at most a minute of queries, one ID each.
            for (int id = 0; id < 10_000 && running; id++) {
                try {
                    Message query = Message.newQuery(Record.newRecord(
                            Name.fromString("q" + id + "-" + transport + ".a.test."), Type.A, DClass.IN));
                    query.getHeader().setID(id);
                    sent.put(id, new Sent(query.getQuestion().getName().toString(), System.currentTimeMillis()));
                    send(id, query.toWire());
                } catch (IOException e) {
                    problems.add("query " + id + " not built: " + e);
                }
                next += PACE_NANOS;
                long wait = next - System.nanoTime();
                if (wait > 0) {
                    try {
                        TimeUnit.NANOSECONDS.sleep(wait);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        }

        /** Sends one query; a failure to send is recorded by the transport, not thrown. */
        abstract void send(int id, byte[] wire);

        /** An answer came back: it must be to a query sent, once, with the same question. */
        final void received(byte[] wire) {
            try {
                Message answer = new Message(wire);
                int id = answer.getHeader().getID();
                Sent query = sent.get(id);
                if (query == null || !query.name().equals(answer.getQuestion().getName().toString())) {
                    problems.add("an answer to no query sent: " + answer.getQuestion());
                } else if (answers.putIfAbsent(id, answer) != null) {
                    problems.add("a second answer to query " + id);
                }
            } catch (IOException e) {
                problems.add("an answer that does not parse: " + e);
            }
        }

        void stop() throws InterruptedException {
            running = false;
            sender.join(2000);
        }

        /**
         * Every query sent before the stop (and before the drain delay ended) has its answer, from
         * the resolver (no SERVFAIL); none sent after the stop has one.
         */
        final void assertConsistent(long stoppedAt, long delayEnded) {
            assertTrue(problems.isEmpty(), transport + ": " + problems);
            int before = 0;
            int after = 0;
            int withinDelay = 0;
            for (Map.Entry<Integer, Sent> query : sent.entrySet()) {
                long at = query.getValue().atMillis();
                Message answer = answers.get(query.getKey());
                if (at < stoppedAt - UNDECIDED_MILLIS) {
                    before++;
                    withinDelay += at < delayEnded - UNDECIDED_MILLIS ? 1 : 0;
                    assertTrue(answer != null, transport + " query " + query.getKey() + " sent "
                            + (stoppedAt - at) + " ms before the stop got no answer");
                    assertTrue(answer.getRcode() != Rcode.SERVFAIL, transport + " query " + query.getKey()
                            + ": " + Rcode.string(answer.getRcode()));
                } else if (at > stoppedAt) {
                    after++;
                    assertTrue(answer == null, transport + " query " + query.getKey() + " sent "
                            + (at - stoppedAt) + " ms after the stop was answered");
                }
            }
            assertTrue(before > 100, transport + ": a steady load before the stop (" + before + " queries)");
            assertTrue(withinDelay > 100, transport + ": and before the drain delay ended (" + withinDelay + ")");
            assertTrue(after > 10, transport + ": and after it, to show they go unanswered (" + after + ")");
        }
    }

    /** Queries from one UDP socket; a thread reads the answers. */
    private static final class UdpLoad extends Load {
        private final DatagramSocket socket;
        private final Thread receiver;

        UdpLoad(int port) throws IOException {
            super("udp", port);
            socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            socket.setSoTimeout(200);
            receiver = new Thread(this::receive, "udp-answers");
            receiver.setDaemon(true);
            receiver.start();
            begin();
        }

        @Override
        void send(int id, byte[] wire) {
            try {
                socket.send(new DatagramPacket(wire, wire.length, InetAddress.getLoopbackAddress(), port));
            } catch (IOException e) {
                // a datagram to a closed port: the query simply gets no answer
            }
        }

        private void receive() {
            byte[] buffer = new byte[1232];
            while (true) {
                DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
                try {
                    socket.receive(packet);
                    received(Arrays.copyOf(buffer, packet.getLength()));
                } catch (SocketTimeoutException quiet) {
                    if (!running) {
                        return;
                    }
                } catch (IOException closed) {
                    return;
                }
            }
        }

        @Override
        void stop() throws InterruptedException {
            super.stop();
            receiver.join(2000);
        }

        @Override
        public void close() throws InterruptedException {
            stop();
            socket.close();
        }
    }

    /**
     * Queries pipelined on one TCP connection, as a forwarder sends them; when the proxy closes it,
     * the next query opens a new one, and a refused connection is noted with its time.
     */
    private static final class TcpLoad extends Load {
        private final List<Long> refusedAt = new CopyOnWriteArrayList<>();
        private final List<Thread> readers = new CopyOnWriteArrayList<>();
        private volatile Socket socket;
        private DataOutputStream out;
        private volatile boolean ended = true;

        TcpLoad(int port) {
            super("tcp", port);
            begin();
        }

        @Override
        void send(int id, byte[] wire) {
            try {
                if (ended) {
                    connect();
                }
                out.writeShort(wire.length);
                out.write(wire);
                out.flush();
            } catch (ConnectException refused) {
                refusedAt.add(System.currentTimeMillis());
            } catch (IOException broken) {
                ended = true; // the query went nowhere, or to a connection being closed: no answer
            }
        }

        private void connect() throws IOException {
            if (socket != null) {
                socket.close();
            }
            Socket connection = new Socket();
            connection.setTcpNoDelay(true);
            connection.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 1000);
            socket = connection;
            out = new DataOutputStream(connection.getOutputStream());
            ended = false;
            Thread reader = new Thread(() -> read(connection), "tcp-answers");
            reader.setDaemon(true);
            readers.add(reader);
            reader.start();
        }

        private void read(Socket connection) {
            try {
                DataInputStream in = new DataInputStream(connection.getInputStream());
                while (true) {
                    byte[] answer = new byte[in.readUnsignedShort()];
                    in.readFully(answer);
                    received(answer);
                }
            } catch (IOException endOfStream) {
                if (socket == connection) {
                    ended = true; // the proxy closed it: the next query opens another
                }
            }
        }

        void assertRefusedOnlyAfter(long stoppedAt) {
            for (long at : refusedAt) {
                assertTrue(at > stoppedAt - UNDECIDED_MILLIS,
                        "a TCP connection was refused " + (stoppedAt - at) + " ms before the proxy stopped accepting");
            }
        }

        @Override
        void stop() throws InterruptedException {
            super.stop();
            if (socket != null) {
                try {
                    socket.close();
                } catch (IOException ignored) {
                    // closing our side only
                }
            }
            for (Thread reader : readers) {
                reader.join(2000);
            }
        }

        @Override
        public void close() throws InterruptedException {
            stop();
        }
    }
}
