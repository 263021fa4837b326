package io.dotproxy.it;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.List;

/**
 * Where an integration test runs its processes and reaches their ports: this machine's own
 * network ({@link #HOST}), or a network namespace the test made ({@link NetworkNamespace}).
 */
interface Network {
    /** The network the test JVM itself is in. */
    Network HOST = new Network() {
        @Override
        public List<String> command(List<String> command) {
            return command;
        }

        @Override
        public boolean acceptsTcp(String address, int port) {
            try (Socket probe = new Socket()) {
                probe.connect(new InetSocketAddress(address, port), 1000);
                return true;
            } catch (IOException notYet) {
                return false;
            }
        }
    };

    /** The command line that runs {@code command} in this network (as the same process, so signals reach it). */
    List<String> command(List<String> command);

    /** Whether something in this network accepts a TCP connection on {@code address:port} now. */
    boolean acceptsTcp(String address, int port) throws IOException, InterruptedException;
}
