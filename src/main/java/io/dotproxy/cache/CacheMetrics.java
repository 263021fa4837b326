package io.dotproxy.cache;

import io.dotproxy.metrics.Tally;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.EnumMap;
import java.util.Locale;
import java.util.function.ToLongFunction;

/** The cache's meters, registered once; tags are only {@code result}, never a name. */
public final class CacheMetrics {
    /** What became of an upstream answer offered to the cache. */
    enum Storing {
        /** Kept: an answer with records. */
        POSITIVE,
        /** Kept: NXDOMAIN or NODATA, for the time its SOA record allows (RFC 2308 §5). */
        NEGATIVE,
        /** Kept for a few seconds: a SERVFAIL from the upstream (RFC 2308 §7.1). */
        SERVFAIL,
        /** Not kept: it does not parse, or its question is not the query's. */
        MISMATCH,
        /** Not kept: TC=1 (RFC 2181 §9: never cache a truncated answer). */
        TRUNCATED,
        /** Not kept: it carries an EDNS Client Subnet option, so it may be meant for one subnet (RFC 7871 §7.3). */
        CLIENT_SUBNET,
        /** Not kept: an rcode other than NOERROR, NXDOMAIN and SERVFAIL. */
        RCODE,
        /** Not kept: a negative answer without an SOA record says nothing of how long it holds (RFC 2308 §5). */
        NO_SOA,
        /** Not kept: a TTL of zero means "use once" (RFC 1035 §3.2.1). */
        ZERO_TTL,
        /** Not kept: a SERVFAIL must not push out an answer that can still be served stale. */
        KEPT_OLDER,
        /** Not kept: the cache is full and the question was not asked lately ({@link Doorkeeper}). */
        ONE_OFF,
        /** Not kept: larger than a chunk of the cache's store (only very large answers in small caches). */
        TOO_LARGE
    }

    private final Tally hits;
    private final Tally misses;
    private final Tally stale;
    private final Tally prefetches;
    private final Tally coalesced;
    private final Tally evictions;
    private final EnumMap<Storing, Tally> stores = new EnumMap<>(Storing.class);
    // Set once the cache exists; read by the gauges on the scraping thread.
    private volatile ResponseCache cache;

    public CacheMetrics(MeterRegistry registry) {
        hits = Tally.register(registry, "dotproxy.cache.hits", "Queries answered from the cache, fresh");
        misses = Tally.register(registry, "dotproxy.cache.misses", "Queries the cache had no fresh answer for");
        stale = Tally.register(registry, "dotproxy.cache.stale.answers",
                "Expired answers served because the upstreams failed or were slow (RFC 8767)");
        prefetches = Tally.register(registry, "dotproxy.cache.prefetches",
                "Popular answers refreshed in the background before they expired");
        coalesced = Tally.register(registry, "dotproxy.cache.coalesced",
                "Queries that waited for an identical query already in flight instead of going upstream");
        evictions = Tally.register(registry, "dotproxy.cache.evictions", "Entries pushed out to stay within the size bound");
        for (Storing storing : Storing.values()) {
            stores.put(storing, Tally.register(registry, "dotproxy.cache.stores",
                    "Upstream answers offered to the cache, by what became of them",
                    "result", storing.name().toLowerCase(Locale.ROOT)));
        }
        Gauge.builder("dotproxy.cache.entries", this, metrics -> metrics.read(ResponseCache::entries))
                .description("Answers in the cache, stale ones included").register(registry);
        Gauge.builder("dotproxy.cache.bytes", this, metrics -> metrics.read(ResponseCache::bytes))
                .description("Octets the cache holds (answers and their index), as its size bound counts them").register(registry);
    }

    void watch(ResponseCache watched) {
        cache = watched;
    }

    void hit() {
        hits.increment();
    }

    void miss() {
        misses.increment();
    }

    void staleAnswer() {
        stale.increment();
    }

    void prefetch() {
        prefetches.increment();
    }

    void coalesced() {
        coalesced.increment();
    }

    void evicted() {
        evictions.increment();
    }

    void stored(Storing storing) {
        stores.get(storing).increment();
    }

    private double read(ToLongFunction<ResponseCache> value) {
        ResponseCache watched = cache;
        return watched == null ? 0 : value.applyAsLong(watched);
    }
}
