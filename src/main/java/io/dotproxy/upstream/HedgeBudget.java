package io.dotproxy.upstream;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;

/**
 * Caps hedged queries at a share of all queries, over the last ten to twenty seconds, so that a
 * slow period cannot double the load on the upstreams.
 */
final class HedgeBudget {
    private static final long WINDOW_NANOS = TimeUnit.SECONDS.toNanos(10);

    private final double maxShare;
    private final LongAdder queries = new LongAdder();
    private long windowStart = System.nanoTime();
    private long queriesAtWindowStart;
    private long queriesInPreviousWindow;
    private long hedgesInWindow;
    private long hedgesInPreviousWindow;

    HedgeBudget(double maxShare) {
        this.maxShare = maxShare;
    }

    /** Called once per query: the hot path, hence a striped counter. */
    void countQuery() {
        queries.increment();
    }

    /** Takes one hedge from the budget, if there is one left. */
    synchronized boolean tryHedge() {
        long now = System.nanoTime();
        long total = queries.sum();
        if (now - windowStart > WINDOW_NANOS) {
            queriesInPreviousWindow = total - queriesAtWindowStart;
            hedgesInPreviousWindow = hedgesInWindow;
            queriesAtWindowStart = total;
            hedgesInWindow = 0;
            windowStart = now;
        }
        long recentQueries = total - queriesAtWindowStart + queriesInPreviousWindow;
        long recentHedges = hedgesInWindow + hedgesInPreviousWindow;
        if (recentHedges + 1 > maxShare * recentQueries) {
            return false;
        }
        hedgesInWindow++;
        return true;
    }
}
