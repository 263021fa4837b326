package io.dotproxy.upstream;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Picks the upstream for the next attempt of a query among candidates: healthy members not yet
 * tried for that query, in order of preference. Implementations are thread-safe and tiny.
 */
public sealed interface Policy permits Policy.Failover, Policy.RoundRobin, Policy.Random, Policy.Fastest {

    /** Returns the index in {@code candidates} (never empty) of the member to try. */
    int pick(List<Member> candidates);

    /** The policy named as in {@code dotproxy.policy}. */
    static Policy named(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "failover" -> new Failover();
            case "round-robin" -> new RoundRobin();
            case "random" -> new Random();
            case "fastest" -> new Fastest();
            default -> throw new IllegalArgumentException(name);
        };
    }

    /** The names {@link #named} accepts. */
    List<String> NAMES = List.of("fastest", "failover", "round-robin", "random");

    /** In order of preference: the first healthy one. */
    record Failover() implements Policy {
        @Override
        public int pick(List<Member> candidates) {
            return 0;
        }
    }

    /** Each in turn. */
    final class RoundRobin implements Policy {
        private final AtomicInteger next = new AtomicInteger();

        @Override
        public int pick(List<Member> candidates) {
            return Math.floorMod(next.getAndIncrement(), candidates.size());
        }
    }

    /** Any, uniformly. */
    record Random() implements Policy {
        @Override
        public int pick(List<Member> candidates) {
            return ThreadLocalRandom.current().nextInt(candidates.size());
        }
    }

    /**
     * The lowest smoothed round-trip time; one query in {@value #EXPLORE_ONE_IN} goes to another
     * candidate, so that a slower upstream that got faster (or just recovered) is noticed.
     */
    record Fastest() implements Policy {
        static final int EXPLORE_ONE_IN = 20;

        @Override
        public int pick(List<Member> candidates) {
            int n = candidates.size();
            if (n > 1 && ThreadLocalRandom.current().nextInt(EXPLORE_ONE_IN) == 0) {
                return ThreadLocalRandom.current().nextInt(n);
            }
            int best = 0;
            long bestRtt = candidates.get(0).latency().smoothedNanos();
            for (int i = 1; i < n; i++) {
                long rtt = candidates.get(i).latency().smoothedNanos();
                if (rtt < bestRtt) {
                    best = i;
                    bestRtt = rtt;
                }
            }
            return best;
        }
    }
}
