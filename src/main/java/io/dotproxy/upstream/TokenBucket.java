package io.dotproxy.upstream;

/**
 * A token bucket, here the handshake budget of one upstream: after an outage, a fleet of
 * replicas reconnects at a bounded rate instead of stampeding the provider with handshakes.
 * Shared by the lanes' members of one upstream ({@link Standing}), so it takes a lock: it is asked
 * once per new connection, not per query.
 */
final class TokenBucket {
    private final double capacity;
    private final double tokensPerNano;
    private double tokens;
    private long lastNanos = System.nanoTime();

    TokenBucket(int capacity, double tokensPerSecond) {
        this.capacity = capacity;
        this.tokensPerNano = tokensPerSecond / 1e9;
        this.tokens = capacity;
    }

    synchronized boolean tryTake() {
        long now = System.nanoTime();
        tokens = Math.min(capacity, tokens + (now - lastNanos) * tokensPerNano);
        lastNanos = now;
        if (tokens >= 1) {
            tokens -= 1;
            return true;
        }
        return false;
    }
}
