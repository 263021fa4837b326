package io.dotproxy.testing;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.Arrays;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;
import org.xbill.DNS.DClass;

/** A plain blocking DNS client over loopback UDP and TCP, for tests; dnsjava builds and reads. */
public final class DnsClient {
    private static final int TIMEOUT_MILLIS = 5000;

    private DnsClient() {}

    /** A recursive query for {@code name}/{@code type}, optionally with EDNS at {@code udpSize}. */
    public static Message query(String name, int type, int ednsUdpSize) {
        try {
            Message query = Message.newQuery(Record.newRecord(Name.fromString(name, Name.root), type, DClass.IN));
            if (ednsUdpSize > 0) {
                query.addRecord(new OPTRecord(ednsUdpSize, 0, 0), Section.ADDITIONAL);
            }
            return query;
        } catch (IOException e) {
            throw new IllegalArgumentException(e);
        }
    }

    public static Message query(String name) {
        return query(name, Type.A, 0);
    }

    /** Sends over UDP and waits for the answer. */
    public static Message udp(int port, Message query) throws IOException {
        byte[] answer = udpRaw(port, query.toWire(), TIMEOUT_MILLIS);
        if (answer == null) {
            throw new SocketTimeoutException("no UDP answer");
        }
        return new Message(answer);
    }

    /** Sends raw octets over UDP; the answer's octets, or null when none came in time. */
    public static byte[] udpRaw(int port, byte[] datagram, int waitMillis) throws IOException {
        try (DatagramSocket socket = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            socket.setSoTimeout(waitMillis);
            socket.send(new DatagramPacket(datagram, datagram.length, InetAddress.getLoopbackAddress(), port));
            return receive(socket);
        }
    }

    /** The next datagram's octets on {@code socket}, or null when none comes within its timeout. */
    public static byte[] receive(DatagramSocket socket) throws IOException {
        byte[] buffer = new byte[65535];
        DatagramPacket packet = new DatagramPacket(buffer, buffer.length);
        try {
            socket.receive(packet);
        } catch (SocketTimeoutException none) {
            return null;
        }
        return Arrays.copyOf(buffer, packet.getLength());
    }

    /** Sends over a new TCP connection and waits for the answer. */
    public static Message tcp(int port, Message query) throws IOException {
        try (Tcp connection = new Tcp(port)) {
            connection.send(query.toWire());
            return new Message(connection.receive());
        }
    }

    /** One TCP connection: 2-octet length framing, several messages each way. */
    public static final class Tcp implements AutoCloseable {
        private final Socket socket;
        private final DataOutputStream out;
        private final DataInputStream in;

        public Tcp(int port) throws IOException {
            socket = new Socket(InetAddress.getLoopbackAddress(), port);
            socket.setSoTimeout(TIMEOUT_MILLIS);
            socket.setTcpNoDelay(true);
            out = new DataOutputStream(socket.getOutputStream());
            in = new DataInputStream(socket.getInputStream());
        }

        public void send(byte[] message) throws IOException {
            out.writeShort(message.length);
            out.write(message);
            out.flush();
        }

        public byte[] receive() throws IOException {
            int length = in.readUnsignedShort();
            byte[] message = new byte[length];
            in.readFully(message);
            return message;
        }

        /** Whether the server closed the connection (reads end of stream within the timeout). */
        public boolean closedByServer() throws IOException {
            try {
                return in.read() < 0;
            } catch (SocketTimeoutException e) {
                return false;
            }
        }

        public Socket socket() {
            return socket;
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }
}
