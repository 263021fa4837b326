package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.smallrye.config.EnvConfigSource;
import io.smallrye.config.PropertiesConfigSource;
import io.smallrye.config.SmallRyeConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The settings file as one more configuration source, read by SmallRye exactly as Quarkus reads it
 * at start-up: what it overrides, what overrides it, and what the proxy says about both.
 */
class SettingsFileTest {
    @TempDir
    Path dir;

    /**
     * The configuration as the running proxy sees it: built-in defaults, then {@code
     * application.properties} (250), the settings file (275), environment variables (300) and
     * {@code -D} (400).
     */
    private static SmallRyeConfig config(Map<String, String> applicationProperties, Map<String, String> environment,
                                         Map<String, String> systemProperties) {
        return SettingsRereader.mapping()
                .withSources(new PropertiesConfigSource(applicationProperties, "application.properties", 250))
                .withSources(new SettingsFile())
                .withSources(new EnvConfigSource(environment, 300)) // DOTPROXY_CONFIG_FILE as a container spells it
                .withSources(new PropertiesConfigSource(systemProperties, "system properties", 400))
                .build();
    }

    private Path file(String text) throws IOException {
        return Files.writeString(dir.resolve("dot-proxy.properties"), text);
    }

    @Test
    void theFileOverridesTheBuiltInSettingsAndIsOverriddenByEnvironmentAndSystemProperties() throws IOException {
        Path file = file("""
                # an operator's ConfigMap
                dotproxy.upstreams=9.9.9.9:853#dns.quad9.net
                dotproxy.timeout=3s
                dotproxy.policy=round-robin
                dotproxy.cache.max-size=16m
                """);
        SmallRyeConfig config = config(Map.of("dotproxy.timeout", "5s", "dotproxy.max-in-flight", "123"),
                Map.of("dotproxy.config-file", file.toString(), "dotproxy.policy", "random"), Map.of());

        ProxySettings settings = SettingsReader.read(config.getConfigMapping(ProxyConfig.class), Optional.empty());

        assertEquals("9.9.9.9", settings.forwarding().dot().get(0).address().socketAddress().getHostString(), "from the file");
        assertEquals(Duration.ofSeconds(3), settings.pipeline().timeout(), "the file over application.properties");
        assertEquals("random", settings.forwarding().policy(), "the environment over the file");
        assertEquals(123, settings.pipeline().maxInFlight(), "application.properties where the file is silent");
        assertEquals(16L << 20, settings.cache().maxBytes());
        assertEquals(List.of("dotproxy.policy in " + file + " has no effect: the environment variable DOTPROXY_POLICY sets it too"),
                SettingsFile.maskedKeys(config, file));
    }

    @Test
    void aSystemPropertyMasksAFileKeyToo() throws IOException {
        Path file = file("dotproxy.timeout=3s\n");
        SmallRyeConfig config = config(Map.of(), Map.of("DOTPROXY_CONFIG_FILE", file.toString()),
                Map.of("dotproxy.timeout", "4s"));

        ProxySettings settings = SettingsReader.read(config.getConfigMapping(ProxyConfig.class), Optional.empty());

        assertEquals(Duration.ofSeconds(4), settings.pipeline().timeout());
        List<String> masked = SettingsFile.maskedKeys(config, file);
        assertEquals(1, masked.size());
        assertEquals("dotproxy.timeout in " + file + " has no effect: -Ddotproxy.timeout sets it too", masked.get(0));
    }

    @Test
    void theMaskedKeysAreThoseOfTheFileAsTheSettingsReadItNotAsItReadsNow() throws IOException {
        Path file = file("dotproxy.timeout=3s\n");
        SmallRyeConfig config = config(Map.of(), Map.of("DOTPROXY_CONFIG_FILE", file.toString(), "dotproxy.timeout", "4s"),
                Map.of());
        Files.writeString(file, "dotproxy.policy=random\n"); // changed after the settings were read

        assertEquals(List.of("dotproxy.timeout in " + file
                        + " has no effect: the environment variable DOTPROXY_TIMEOUT sets it too"),
                SettingsFile.maskedKeys(config, file));
        assertEquals(List.of(), SettingsFile.maskedKeys(config, dir.resolve("another.properties")),
                "a file the settings did not read masks nothing");
    }

    @Test
    void aBadValueInTheFileStopsStartUpWithTheSameOneLine() throws IOException {
        Path file = file("dotproxy.upstream.pool-size=0\n");
        SmallRyeConfig config = config(Map.of(), Map.of("dotproxy.config-file", file.toString()), Map.of());

        ConfigError error = assertThrows(ConfigError.class,
                () -> SettingsReader.read(config.getConfigMapping(ProxyConfig.class), Optional.empty()));

        assertEquals("Invalid configuration: dotproxy.upstream.pool-size=0: expected a whole number from 1 to 64",
                error.getMessage());
    }

    @Test
    void aMissingFileStopsStartUpNamingTheKey() {
        Path missing = dir.resolve("not-there.properties");
        SmallRyeConfig config = config(Map.of(), Map.of("dotproxy.config-file", missing.toString()), Map.of());

        ConfigError error = assertThrows(ConfigError.class,
                () -> SettingsReader.read(config.getConfigMapping(ProxyConfig.class), Optional.empty()));

        assertTrue(error.getMessage().startsWith("Invalid configuration: dotproxy.config-file=" + missing
                + ": expected a readable properties file"), error.getMessage());
    }

    @Test
    void withoutTheKeyThereIsNoFileAndNothingChanges() {
        Map<String, String> none = new HashMap<>();
        SmallRyeConfig config = config(Map.of("dotproxy.timeout", "5s"), none, Map.of());

        ProxySettings settings = SettingsReader.read(config.getConfigMapping(ProxyConfig.class), Optional.empty());

        assertEquals(Duration.ofSeconds(5), settings.pipeline().timeout());
        assertTrue(config.getConfigSources().iterator().hasNext());
        config.getConfigSources().forEach(source ->
                assertTrue(!source.getName().startsWith("dotproxy.config-file"), "no file source: " + source.getName()));
    }
}
