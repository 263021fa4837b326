package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;

/**
 * The graceful stop a SIGTERM starts ({@link ProxyHarness#drain()} runs production's drain): not
 * ready at once while still serving for the drain delay; then nothing new is read, idle TCP
 * clients are closed, busy ones get their answers and then the close; every query accepted before
 * is answered by its upstream, over UDP and TCP, before the listeners close.
 */
class DrainTest {
    private static final TestCa CA = TestCa.create();
    /** Long enough that the stop clearly begins while the queries are upstream. */
    private static final Duration UPSTREAM_DELAY = Duration.ofMillis(1200);

    private static FakeUpstream slowUpstream() {
        return FakeUpstream.start(CA.issue(List.of(ProxyHarness.TLS_NAME), List.of()),
                (query, connection) -> new FakeUpstream.Answer(FakeUpstream.answerA(query, "192.0.2.1"), UPSTREAM_DELAY));
    }

    private static CompletableFuture<Void> drainInBackground(ProxyHarness proxy) {
        return CompletableFuture.runAsync(proxy::drain);
    }

    private static DatagramSocket udpClient() throws IOException {
        DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        socket.setSoTimeout(3000);
        return socket;
    }

    private static void send(DatagramSocket socket, int port, Message query) throws IOException {
        byte[] wire = query.toWire();
        socket.send(new DatagramPacket(wire, wire.length, InetAddress.getLoopbackAddress(), port));
    }

    /** The next answer on {@code socket}, or null when none comes within {@code waitMillis}. */
    private static Message receive(DatagramSocket socket, int waitMillis) throws IOException {
        socket.setSoTimeout(waitMillis);
        byte[] answer = DnsClient.receive(socket);
        return answer == null ? null : new Message(answer);
    }

    private static boolean refusesConnections(int port) {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            return false;
        } catch (ConnectException refused) {
            return true;
        } catch (IOException other) {
            return false;
        }
    }

    @Test
    void queriesInFlightWhenTheStopBeginsAreAllAnsweredByTheUpstreamOverUdpAndTcp() throws Exception {
        int perTransport = 20;
        try (FakeUpstream upstream = slowUpstream();
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).start();
             DatagramSocket udp = udpClient();
             DnsClient.Tcp tcp = new DnsClient.Tcp(proxy.port())) {
            Map<Integer, String> udpAsked = new HashMap<>();
            Map<Integer, String> tcpAsked = new HashMap<>();
            for (int i = 0; i < perTransport; i++) {
                Message overUdp = DnsClient.query("udp" + i + ".drain.example.");
                udpAsked.put(overUdp.getHeader().getID(), overUdp.getQuestion().getName().toString());
                send(udp, proxy.port(), overUdp);
                Message overTcp = DnsClient.query("tcp" + i + ".drain.example.");
                tcpAsked.put(overTcp.getHeader().getID(), overTcp.getQuestion().getName().toString());
                tcp.send(overTcp.toWire()); // pipelined on one connection
            }
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5),
                    () -> proxy.inFlight() == 2 * perTransport), "every query accepted and upstream");

            long start = System.nanoTime();
            CompletableFuture<Void> drain = drainInBackground(proxy);
            assertTrue(Eventually.holds(Duration.ofMillis(500), Duration.ofMillis(5), () -> refusesConnections(proxy.port())),
                    "stopped accepting at once (no drain delay)");
            assertFalse(drain.isDone(), "the drain waits for the queries in flight");

            for (int i = 0; i < perTransport; i++) {
                Message answer = receive(udp, 3000);
                assertTrue(answer != null, "UDP answer " + i + " came");
                assertEquals(Rcode.NOERROR, answer.getRcode(), "the upstream's answer, not an error of the proxy's");
                assertEquals(udpAsked.remove(answer.getHeader().getID()), answer.getQuestion().getName().toString());
                Message overTcp = new Message(tcp.receive());
                assertEquals(Rcode.NOERROR, overTcp.getRcode());
                assertEquals(tcpAsked.remove(overTcp.getHeader().getID()), overTcp.getQuestion().getName().toString());
            }
            assertTrue(udpAsked.isEmpty() && tcpAsked.isEmpty(), "each query answered once, by its ID");
            assertTrue(tcp.closedByServer(), "the TCP client is closed once its answers are written");
            drain.get(5, TimeUnit.SECONDS);
            assertTrue(System.nanoTime() - start >= UPSTREAM_DELAY.toNanos() / 2, "the drain waited for the answers");
            assertEquals(0, proxy.inFlight());
            assertEquals(0, proxy.count("dotproxy.server.errors"), "no SERVFAIL of the proxy's own");
            assertEquals(2 * perTransport, upstream.queries().size());
        }
    }

    @Test
    void duringTheDrainDelayTheProxyIsNotReadyYetAnswersEveryClient() throws Exception {
        Duration delay = Duration.ofMillis(1500);
        try (FakeUpstream upstream = FakeUpstream.start(CA.issue(List.of(ProxyHarness.TLS_NAME), List.of()),
                FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).drainDelay(delay).start()) {
            assertTrue(proxy.server().isServing());
            long start = System.nanoTime();
            CompletableFuture<Void> drain = drainInBackground(proxy);
            assertTrue(Eventually.holds(Duration.ofMillis(200), Duration.ofMillis(1), () -> proxy.server().isStopping()),
                    "not ready at once");
            assertFalse(proxy.server().isServing());
            assertFalse(proxy.server().hasFailed(), "a drain is no failure for liveness");

            // Still serving, new TCP connections included, until the delay ends.
            assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("during.drain.example.")).getRcode());
            assertEquals(Rcode.NOERROR, DnsClient.tcp(proxy.port(), DnsClient.query("during.drain.example.")).getRcode());
            assertTrue(System.nanoTime() - start < delay.toNanos(), "those were asked within the delay");
            assertFalse(drain.isDone());

            drain.get(delay.plusSeconds(5).toMillis(), TimeUnit.MILLISECONDS);
            assertTrue(System.nanoTime() - start >= delay.toNanos(), "served for the whole delay");
            assertTrue(refusesConnections(proxy.port()), "the TCP listener is closed");
            assertEquals(null, DnsClient.udpRaw(proxy.port(), DnsClient.query("after.drain.example.").toWire(), 300),
                    "no answer over UDP once the listeners closed");
        }
    }

    @Test
    void onceItStopsAcceptingNothingNewIsReadWhileAcceptedQueriesAreStillAnswered() throws Exception {
        try (FakeUpstream upstream = slowUpstream();
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).start();
             DatagramSocket udp = udpClient()) {
            Message accepted = DnsClient.query("accepted.drain.example.");
            send(udp, proxy.port(), accepted);
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5), () -> proxy.inFlight() == 1));

            CompletableFuture<Void> drain = drainInBackground(proxy);
            // The acceptor closes and UDP reading stops in the same step on the event loop.
            assertTrue(Eventually.holds(Duration.ofMillis(500), Duration.ofMillis(5), () -> refusesConnections(proxy.port())));
            Message late = DnsClient.query("late.drain.example.");
            send(udp, proxy.port(), late); // the socket is still open (the first answer leaves through it), unread

            Message answer = receive(udp, 3000);
            assertTrue(answer != null, "the accepted query is answered");
            assertEquals(accepted.getHeader().getID(), answer.getHeader().getID());
            assertEquals(Rcode.NOERROR, answer.getRcode());
            drain.get(5, TimeUnit.SECONDS);
            assertEquals(null, receive(udp, 500), "the query sent after the proxy stopped accepting gets no answer");
            assertEquals(1, proxy.count("dotproxy.server.queries", "proto", "udp"), "and was never read");
            assertEquals(1, upstream.queries().size(), "nor forwarded");
        }
    }

    @Test
    void aClientThatHalfClosesWhileItsAnswersAreStillQueuedGetsEveryOne() throws Exception {
        int queries = 60;
        // About 50 KB an answer, to a client that reads nothing yet: most answers wait in the proxy.
        FakeUpstream.Behaviour large = (query, connection) -> new FakeUpstream.Answer(
                FakeUpstream.answerTxt(query, 200, 250), Duration.ZERO);
        try (FakeUpstream upstream = FakeUpstream.start(CA.issue(List.of(ProxyHarness.TLS_NAME), List.of()), large);
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).start();
             Socket client = new Socket()) {
            client.setReceiveBufferSize(4096);
            client.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), proxy.port()));
            client.setSoTimeout(5000);
            DataOutputStream out = new DataOutputStream(client.getOutputStream());
            for (int i = 0; i < queries; i++) {
                byte[] wire = DnsClient.query("large" + i + ".drain.example.").toWire();
                out.writeShort(wire.length);
                out.write(wire);
            }
            out.flush();
            assertTrue(Eventually.holds(Duration.ofSeconds(5), Duration.ofMillis(5),
                    () -> upstream.queries().size() == queries && proxy.inFlight() == 0), "every answer handed to the client's connection");

            CompletableFuture<Void> drain = drainInBackground(proxy);
            Thread.sleep(100); // the connection is retired: its answers are being written, then its FIN
            client.shutdownOutput(); // the client's FIN, before it has read its answers

            DataInputStream in = new DataInputStream(client.getInputStream());
            int answers = 0;
            try {
                while (answers < queries) {
                    byte[] answer = new byte[in.readUnsignedShort()];
                    in.readFully(answer);
                    assertEquals(Rcode.NOERROR, new Message(answer).getRcode());
                    answers++;
                }
            } catch (EOFException closedEarly) {
                // counted below
            }
            assertEquals(queries, answers, "every answer queued before the client's FIN reached it");
            drain.get(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void idleTcpClientsAreClosedAtOnceAndBusyOnesOnceTheirAnswersAreWritten() throws Exception {
        try (FakeUpstream upstream = slowUpstream();
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).start();
             DnsClient.Tcp idle = new DnsClient.Tcp(proxy.port());
             DnsClient.Tcp busy = new DnsClient.Tcp(proxy.port())) {
            Message asked = DnsClient.query("busy.drain.example.");
            busy.send(asked.toWire());
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5),
                    () -> proxy.inFlight() == 1 && proxy.gauge("dotproxy.server.connections", "proto", "tcp") == 2));

            long start = System.nanoTime();
            CompletableFuture<Void> drain = drainInBackground(proxy);
            idle.socket().setSoTimeout(2000);
            assertTrue(idle.closedByServer(), "the idle client is closed");
            assertTrue(System.nanoTime() - start < UPSTREAM_DELAY.toNanos(), "at once, not after the busy one's answer");

            busy.send(DnsClient.query("unread.drain.example.").toWire()); // after the stop: not read
            Message answer = new Message(busy.receive());
            assertEquals(asked.getHeader().getID(), answer.getHeader().getID(), "the busy client gets its answer");
            assertEquals(Rcode.NOERROR, answer.getRcode());
            assertTrue(busy.closedByServer(), "then the close, with no answer to what it sent after the stop");
            drain.get(5, TimeUnit.SECONDS);
            assertEquals(2, proxy.count("dotproxy.server.connections.closed", "result", "drain"));
            assertEquals(1, upstream.queries().size());
        }
    }

    @Test
    void anUpstreamThatNeverAnswersHoldsTheStopNoLongerThanTheQueryDeadline() throws Exception {
        Duration deadline = Duration.ofMillis(600);
        try (FakeUpstream silent = FakeUpstream.start(CA.issue(List.of(ProxyHarness.TLS_NAME), List.of()),
                (query, connection) -> new FakeUpstream.Silence());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(silent).timeout(deadline).start();
             DatagramSocket udp = udpClient()) {
            send(udp, proxy.port(), DnsClient.query("silent.drain.example."));
            assertTrue(Eventually.holds(Duration.ofSeconds(2), Duration.ofMillis(5), () -> proxy.inFlight() == 1));

            long start = System.nanoTime();
            CompletableFuture<Void> drain = drainInBackground(proxy);
            Message answer = receive(udp, 3000);
            assertTrue(answer != null, "the client still gets an answer");
            assertEquals(Rcode.SERVFAIL, answer.getRcode(), "SERVFAIL at its deadline, as without a stop");
            drain.get(5, TimeUnit.SECONDS);
            long tookMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertTrue(tookMillis < deadline.plusSeconds(1).toMillis(), "the stop ended by the deadline: " + tookMillis + " ms");
        }
    }
}
