package io.dotproxy.server;

import java.net.InetAddress;
import java.util.HashMap;
import java.util.Map;

/**
 * Open client TCP connections by client address, shared by every lane's TCP listener, so that the
 * per-client cap holds however the kernel spreads a client's connections over the lanes. Asked
 * once per connection opened or closed, not per query, so a lock costs nothing that matters.
 */
final class ConnectionsPerClient {
    private final Map<InetAddress, Integer> open = new HashMap<>();

    /** Counts a new connection from {@code client}; false, counting nothing, when it has {@code max} open already. */
    synchronized boolean tryOpen(InetAddress client, int max) {
        int count = open.getOrDefault(client, 0);
        if (count >= max) {
            return false;
        }
        open.put(client, count + 1);
        return true;
    }

    /** A connection from {@code client} counted by {@link #tryOpen} has closed. */
    synchronized void closed(InetAddress client) {
        open.computeIfPresent(client, (address, count) -> count > 1 ? count - 1 : null);
    }
}
