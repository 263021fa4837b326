package io.dotproxy.guard;

/**
 * What the rate limiter knows of one client prefix: its token bucket, since when it has been over
 * its limit, and its block. Also the links of the {@link ClientTable} it lives in and of the
 * limiter's list of blocked clients, so that tracking a client allocates nothing else, and an
 * evicted client is reused for the next one. Used on one event loop only.
 */
final class Client {
    // The key: the masked IPv4 address, or the top 64 bits of the masked IPv6 address.
    long key;
    boolean ipv6;

    // Token bucket, in nanotokens (RateLimiter says why).
    double nanoTokens;
    long refilledAt;

    // Over its limit (no token) since overSince, with no token in between.
    boolean over;
    long overSince;

    // Blocked since blockedAt; slipCount counts the UDP queries denied since the last slip.
    boolean blocked;
    long blockedAt;
    int slipCount;

    // ClientTable: the hash chain, and the recency list (older toward the head).
    Client nextInBucket;
    Client newer;
    Client older;

    // RateLimiter: the list of blocked clients, in the order their blocks started (and end).
    Client nextBlocked;
    Client previousBlocked;

    /** Starts afresh as a client never seen, with a full bucket. */
    void reset(double capacity, long now) {
        nanoTokens = capacity;
        refilledAt = now;
        over = false;
        overSince = 0;
        blocked = false;
        blockedAt = 0;
        slipCount = 0;
        nextBlocked = null;
        previousBlocked = null;
    }
}
