package io.dotproxy.testing;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;

/**
 * A plain (clear-text) DNS server on loopback, UDP and TCP on one port, for fallback tests. Its
 * answers come from a function; over UDP an answer longer than 512 octets is cut to its header
 * with TC=1, and a decoy answer with a wrong ID can be sent first (a spoofing attempt).
 */
public final class FakePlainServer implements AutoCloseable {
    private final DatagramSocket udp;
    private final ServerSocket tcp;
    private final Function<Message, Message> answers;
    private final List<Message> udpQueries = new CopyOnWriteArrayList<>();
    private final List<Message> tcpQueries = new CopyOnWriteArrayList<>();
    private final AtomicInteger packets = new AtomicInteger();
    private volatile boolean decoyFirst;

    public FakePlainServer(Function<Message, Message> answers) throws IOException {
        this.answers = answers;
        InetAddress loopback = InetAddress.getLoopbackAddress();
        ServerSocket tcpSocket = null;
        DatagramSocket udpSocket = null;
        for (int i = 0; i < 20 && udpSocket == null; i++) {
            tcpSocket = new ServerSocket(0, 50, loopback);
            try {
                udpSocket = new DatagramSocket(new InetSocketAddress(loopback, tcpSocket.getLocalPort()));
            } catch (SocketException taken) {
                tcpSocket.close();
            }
        }
        this.tcp = tcpSocket;
        this.udp = udpSocket;
        start("plain-udp", this::serveUdp);
        start("plain-tcp", this::serveTcp);
    }

    private static void start(String name, Runnable loop) {
        Thread thread = new Thread(loop, name);
        thread.setDaemon(true);
        thread.start();
    }

    public InetSocketAddress address() {
        return new InetSocketAddress(InetAddress.getLoopbackAddress(), udp.getLocalPort());
    }

    /** Send a decoy answer with a wrong ID before each real UDP answer. */
    public void sendDecoyFirst() {
        decoyFirst = true;
    }

    public List<Message> udpQueries() {
        return udpQueries;
    }

    public List<Message> tcpQueries() {
        return tcpQueries;
    }

    /** Every datagram and TCP connection that reached the server. */
    public int packetsReceived() {
        return packets.get();
    }

    private void serveUdp() {
        byte[] buffer = new byte[65535];
        while (!udp.isClosed()) {
            try {
                DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
                udp.receive(packet);
                packets.incrementAndGet();
                Message query = new Message(Arrays.copyOf(buffer, packet.getLength()));
                udpQueries.add(query);
                byte[] answer = answers.apply(query).toWire();
                if (answer.length > 512) {
                    answer = Arrays.copyOf(answer, 12);
                    answer[2] |= 0x02; // TC
                    answer[5] = 0; // no question, no records: just the header
                    answer[7] = 0;
                    answer[9] = 0;
                    answer[11] = 0;
                    Message cut = new Message(answer);
                    cut.getHeader().setFlag(Flags.TC);
                    cut.addRecord(query.getQuestion(), org.xbill.DNS.Section.QUESTION);
                    answer = cut.toWire();
                }
                if (decoyFirst) {
                    byte[] decoy = answer.clone();
                    decoy[0] ^= 0x55;
                    udp.send(new DatagramPacket(decoy, decoy.length, packet.getSocketAddress()));
                }
                udp.send(new DatagramPacket(answer, answer.length, packet.getSocketAddress()));
            } catch (IOException e) {
                // closed, or a broken packet: keep serving until closed
            }
        }
    }

    private void serveTcp() {
        while (!tcp.isClosed()) {
            try (Socket socket = tcp.accept()) {
                packets.incrementAndGet();
                DataInputStream in = new DataInputStream(socket.getInputStream());
                DataOutputStream out = new DataOutputStream(socket.getOutputStream());
                byte[] message = new byte[in.readUnsignedShort()];
                in.readFully(message);
                Message query = new Message(message);
                tcpQueries.add(query);
                byte[] answer = answers.apply(query).toWire();
                out.writeShort(answer.length);
                out.write(answer);
                out.flush();
            } catch (IOException e) {
                // closed, or the client went away
            }
        }
    }

    @Override
    public void close() throws IOException {
        udp.close();
        tcp.close();
    }
}
