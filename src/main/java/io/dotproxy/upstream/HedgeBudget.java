package io.dotproxy.upstream;

import java.util.concurrent.TimeUnit;

/**
 * Caps hedged queries at a share of all queries, over the last ten to twenty seconds, so that a
 * slow period cannot double the load on the upstreams. Used on the group's event loop only.
 */
final class HedgeBudget {
    private static final long WINDOW_NANOS = TimeUnit.SECONDS.toNanos(10);

    private final double maxShare;
    private long queries;
    private long windowStart = System.nanoTime();
    private long queriesAtWindowStart;
    private long queriesInPreviousWindow;
    private long hedgesInWindow;
    private long hedgesInPreviousWindow;

    HedgeBudget(double maxShare) {
        this.maxShare = maxShare;
    }

    /** Called once per query. */
    void countQuery() {
        queries++;
    }

    /** Takes one hedge from the budget, if there is one left. */
    boolean tryHedge() {
        long now = System.nanoTime();
        long total = queries;
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
