package io.dotproxy.config;

import io.dotproxy.upstream.DotResolver;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * What a new settings value changes against the one in force: the plan a reload follows. DoT
 * resolvers are kept (their connections, circuit state and latency history stay), added (connected
 * ahead before they take queries) or removed (drained, then closed); every other part is either
 * unchanged or changed as a whole; and what cannot change while the proxy runs is named, so that
 * one log line can say "needs a restart" while the rest is applied.
 *
 * @param kept resolvers in both values, in the new order
 * @param added resolvers only in the new value
 * @param removed resolvers only in the value in force
 * @param changed the parts that differ, beside the resolver list itself
 * @param needsRestart the keys whose new values only a restart applies
 */
public record SettingsChange(List<DotResolver> kept, List<DotResolver> added, List<DotResolver> removed,
                             Set<Part> changed, List<String> needsRestart) {
    /** A part of the settings a reload replaces as a whole. */
    public enum Part {
        /** Client TCP limits and timeouts. */
        TCP,
        /** Allow-list, refusal, rate limits. */
        GUARD,
        /** Query deadline, UDP size cap, in-flight cap, ECS handling. */
        PIPELINE,
        /** The response cache's settings (its entries stay: no setting changes what a key means). */
        CACHE,
        /** Policy, the resolvers' order, fallback, retries, hedging, probing. */
        FORWARDING
    }

    public SettingsChange {
        kept = List.copyOf(kept);
        added = List.copyOf(added);
        removed = List.copyOf(removed);
        changed = Set.copyOf(changed);
        needsRestart = List.copyOf(needsRestart);
    }

    /** The plan that takes {@code running} to {@code next}. */
    public static SettingsChange between(ProxySettings running, ProxySettings next) {
        List<String> needsRestart = new ArrayList<>();
        if (!running.listen().host().equals(next.listen().host())) {
            needsRestart.add("dotproxy.listen.host");
        }
        if (running.listen().port() != next.listen().port()) {
            needsRestart.add("dotproxy.listen.port");
        }
        if (running.listen().eventLoops() != next.listen().eventLoops()) {
            needsRestart.add("dotproxy.event-loops");
        }
        if (!running.listen().drainDelay().equals(next.listen().drainDelay())) {
            // Read once, when the stop begins; the one in force stays for the next stop.
            needsRestart.add("dotproxy.shutdown.drain-delay");
        }
        Set<Part> changed = EnumSet.noneOf(Part.class);
        if (!running.listen().tcp().equals(next.listen().tcp())) {
            changed.add(Part.TCP);
        }
        if (!running.guard().equals(next.guard())) {
            changed.add(Part.GUARD);
        }
        if (!running.pipeline().equals(next.pipeline())) {
            changed.add(Part.PIPELINE);
        }
        if (!running.cache().equals(next.cache())) {
            changed.add(Part.CACHE);
        }

        ProxySettings.Forwarding was = running.forwarding();
        ProxySettings.Forwarding now = next.forwarding();
        // A new CA file or connection tuning reaches every resolver: each one is replaced. (A CA
        // file compares by its path: new contents under the same path are not seen here.)
        boolean everyResolverChanges = !Objects.equals(was.caFile(), now.caFile())
                || !was.connections().equals(now.connections());
        List<DotResolver> kept = new ArrayList<>();
        List<DotResolver> added = new ArrayList<>();
        for (DotResolver resolver : now.dot()) {
            (was.dot().contains(resolver) && !everyResolverChanges ? kept : added).add(resolver);
        }
        List<DotResolver> removed = new ArrayList<>();
        for (DotResolver resolver : was.dot()) {
            if (!kept.contains(resolver)) {
                removed.add(resolver);
            }
        }
        List<DotResolver> keptInOldOrder = was.dot().stream().filter(kept::contains).toList();
        if (!keptInOldOrder.equals(kept) || !was.policy().equals(now.policy()) || !was.fallback().equals(now.fallback())
                || was.fallbackMaxInFlight() != now.fallbackMaxInFlight() || !was.group().equals(now.group())
                || !was.probing().equals(now.probing())) {
            changed.add(Part.FORWARDING);
        }
        return new SettingsChange(kept, added, removed, changed, needsRestart);
    }

    /** Whether the new value changes nothing at all. */
    public boolean isEmpty() {
        return added.isEmpty() && removed.isEmpty() && changed.isEmpty() && needsRestart.isEmpty();
    }
}
