package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.config.SettingsChange.Part;
import io.dotproxy.upstream.DotResolver;
import io.smallrye.config.PropertiesConfigSource;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The plan a reload follows, table-driven: one setting changed at a time against the same base. */
class SettingsChangeTest {
    private static final String A = "192.0.2.1:853#a.test";
    private static final String B = "192.0.2.2:853#b.test";
    private static final String C = "192.0.2.3:853#c.test";
    private static final Map<String, String> BASE = Map.of("dotproxy.upstreams", A + "," + B);

    private static ProxySettings settings(Map<String, String> changes) {
        Map<String, String> properties = new HashMap<>(BASE);
        properties.putAll(changes);
        ProxyConfig config = SettingsRereader.mapping()
                .withSources(new PropertiesConfigSource(properties, "test", 500))
                .build()
                .getConfigMapping(ProxyConfig.class);
        return SettingsReader.read(config, Optional.empty());
    }

    private static List<String> names(List<DotResolver> resolvers) {
        return resolvers.stream().map(resolver -> resolver.address().tlsName()).toList();
    }

    static Stream<Arguments> oneChangeAtATime() {
        return Stream.of(
                // change, kept, added, removed, parts changed, needs restart
                Arguments.of(Map.of(), List.of("a.test", "b.test"), List.of(), List.of(), Set.of(), List.of()),
                Arguments.of(Map.of("dotproxy.upstreams", A + "," + B + "," + C),
                        List.of("a.test", "b.test"), List.of("c.test"), List.of(), Set.of(), List.of()),
                Arguments.of(Map.of("dotproxy.upstreams", B),
                        List.of("b.test"), List.of(), List.of("a.test"), Set.of(), List.of()),
                Arguments.of(Map.of("dotproxy.upstreams", B + "," + A),
                        List.of("b.test", "a.test"), List.of(), List.of(), Set.of(Part.FORWARDING), List.of()),
                Arguments.of(Map.of("dotproxy.upstream.spki-pins", "b.test=" + "A".repeat(43) + "="),
                        List.of("a.test"), List.of("b.test"), List.of("b.test"), Set.of(), List.of()),
                Arguments.of(Map.of("dotproxy.upstream.pool-size", "4"),
                        List.of(), List.of("a.test", "b.test"), List.of("a.test", "b.test"), Set.of(), List.of()),
                Arguments.of(Map.of("dotproxy.policy", "round-robin"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.FORWARDING), List.of()),
                Arguments.of(Map.of("dotproxy.fallback", "192.0.2.53"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.FORWARDING), List.of()),
                Arguments.of(Map.of("dotproxy.hedge.max-share", "0.1"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.FORWARDING), List.of()),
                Arguments.of(Map.of("dotproxy.rate-limit.qps", "100"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.GUARD), List.of()),
                Arguments.of(Map.of("dotproxy.allow", "10.0.0.0/8"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.GUARD), List.of()),
                Arguments.of(Map.of("dotproxy.timeout", "3s"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.PIPELINE), List.of()),
                Arguments.of(Map.of("dotproxy.cache.max-size", "16m"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.CACHE), List.of()),
                Arguments.of(Map.of("dotproxy.tcp.max-connections", "10"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(Part.TCP), List.of()),
                Arguments.of(Map.of("dotproxy.listen.port", "5300", "dotproxy.listen.host", "127.0.0.1"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(),
                        List.of("dotproxy.listen.host", "dotproxy.listen.port")),
                Arguments.of(Map.of("dotproxy.shutdown.drain-delay", "10s"),
                        List.of("a.test", "b.test"), List.of(), List.of(), Set.of(),
                        List.of("dotproxy.shutdown.drain-delay")));
    }

    @ParameterizedTest
    @MethodSource
    void oneChangeAtATime(Map<String, String> change, List<String> kept, List<String> added, List<String> removed,
                          Set<Part> changed, List<String> needsRestart) {
        SettingsChange plan = SettingsChange.between(settings(Map.of()), settings(change));

        assertEquals(kept, names(plan.kept()), "kept");
        assertEquals(added, names(plan.added()), "added");
        assertEquals(removed, names(plan.removed()), "removed");
        assertEquals(changed, plan.changed(), "parts changed");
        assertEquals(needsRestart, plan.needsRestart(), "needs a restart");
        assertEquals(change.isEmpty(), plan.isEmpty());
    }

    @Test
    void anotherCaFileReplacesEveryResolver(@TempDir Path dir) throws IOException {
        Path ca = Files.writeString(dir.resolve("ca.pem"), "not read by the reader, only checked to be readable");

        SettingsChange plan = SettingsChange.between(settings(Map.of()), settings(Map.of("dotproxy.tls.ca-file", ca.toString())));

        assertTrue(plan.kept().isEmpty());
        assertEquals(List.of("a.test", "b.test"), names(plan.added()));
        assertEquals(List.of("a.test", "b.test"), names(plan.removed()));
    }
}
