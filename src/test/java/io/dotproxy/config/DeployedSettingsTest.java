package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.Manifests;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import java.io.IOException;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The settings file the deployed ConfigMap gives the proxy, read as the proxy reads it (the
 * production profile, {@link SettingsRereader}, the path a reload takes): it reads without error,
 * so every key is one the proxy knows with a value it takes; the upstreams are the ones listed;
 * the commented settings are valid once uncommented; and the Deployment's grace period outlasts
 * a drain under these settings.
 */
class DeployedSettingsTest {
    private static final Path MANIFESTS = Path.of("deploy", "kubernetes.yml");
    private static final String NAME = "dot-proxy";
    private static final Pattern COMMENTED_SETTING = Pattern.compile("(?m)^#(dotproxy\\.[a-z0-9.-]+=.*)$");

    private static Deployment deployment;
    private static Path fileName;
    private static String text;

    @TempDir
    Path dir;

    @BeforeAll
    static void readTheManifests() throws IOException {
        Manifests manifests = Manifests.read(List.of(MANIFESTS));
        deployment = manifests.get(Deployment.class, NAME);
        Container container = deployment.getSpec().getTemplate().getSpec().getContainers().get(0);
        String configFile = container.getEnv().stream().filter(env -> env.getName().equals("DOTPROXY_CONFIG_FILE"))
                .map(EnvVar::getValue).findFirst().orElseThrow();
        fileName = Path.of(configFile).getFileName();
        text = manifests.configMapEntry(NAME, fileName.toString());
    }

    @AfterEach
    void clearSystemProperties() {
        System.clearProperty("dotproxy.config-file");
    }

    @Test
    void theDeployedSettingsReadWithoutErrorAndForwardToTheUpstreamsListed() throws IOException {
        SettingsRereader.Reading reading = read(text);

        List<String> listed = Arrays.stream(properties(text).getProperty("dotproxy.upstreams").split(","))
                .map(String::strip).toList();
        assertFalse(listed.isEmpty());
        assertEquals(listed, reading.settings().forwarding().dot().stream().map(Object::toString).toList());
        assertEquals(List.of(), reading.maskedKeys(), "no key of the file is masked");
        assertTrue(reading.settings().forwarding().fallback().isEmpty(), "strict: no plain DNS unless uncommented");
    }

    /** So a key the proxy does not know would fail the test above. */
    @Test
    void aMisspeltKeyInTheFileFailsTheReading() {
        Exception error = assertThrows(Exception.class, () -> read(text + "dotproxy.cache.max-sise=8m\n"));
        assertTrue(error.getMessage().contains("dotproxy.cache.max-sise"), error.getMessage());
    }

    @Test
    void theCommentedSettingsAreValidOnceUncommented() throws IOException {
        Matcher commented = COMMENTED_SETTING.matcher(text);
        List<String> lines = commented.results().map(match -> match.group(1)).toList();
        assertTrue(lines.size() >= 3, "commented settings: " + lines);
        Set<String> activeKeys = properties(text).stringPropertyNames();
        Set<String> commentedKeys = lines.stream().map(line -> line.substring(0, line.indexOf('='))).collect(Collectors.toSet());
        assertEquals(lines.size(), commentedKeys.size(), "each commented key once: " + lines);
        assertTrue(commentedKeys.stream().noneMatch(activeKeys::contains), "commented keys are not set already: " + commentedKeys);

        ProxySettings uncommented = read(COMMENTED_SETTING.matcher(text).replaceAll("$1")).settings();

        assertNotEquals(read(text).settings(), uncommented);
        assertFalse(uncommented.forwarding().fallback().isEmpty(), "the fallback line took effect");
    }

    /**
     * A stopping replica answers for the drain delay, then finishes what it accepted within the query
     * deadline and a second for the way back (ProxyRuntime.drain), then closes its upstreams.
     */
    @Test
    void theGracePeriodOutlastsTheDrainDelayAndTheQueryDeadline() throws IOException {
        ProxySettings settings = read(text).settings();
        Duration drain = settings.listen().drainDelay().plus(settings.pipeline().timeout()).plusSeconds(1);
        Duration grace = Duration.ofSeconds(deployment.getSpec().getTemplate().getSpec().getTerminationGracePeriodSeconds());
        assertTrue(grace.compareTo(drain) > 0, "terminationGracePeriodSeconds " + grace.toSeconds() + " s, drain " + drain);
    }

    /**
     * A draining pod answers for the drain delay; it must stop serving before that ends, so that
     * kube-proxy moves its UDP flows while it still answers: readiness fails within the probe's
     * period × failure threshold, plus a second for the endpoints and kube-proxy to sync.
     */
    @Test
    void theDrainDelayOutlastsReadinessGoingDownAndASync() throws IOException {
        Probe readiness = deployment.getSpec().getTemplate().getSpec().getContainers().get(0).getReadinessProbe();
        Duration notServing = Duration.ofSeconds((long) readiness.getPeriodSeconds() * readiness.getFailureThreshold() + 1);
        Duration drainDelay = read(text).settings().listen().drainDelay();
        assertTrue(drainDelay.compareTo(notServing) > 0, "drain delay " + drainDelay + ", out of the Service after " + notServing);
    }

    /** Reads {@code settings} as the mounted settings file, under the production profile. */
    private SettingsRereader.Reading read(String settings) throws IOException {
        Path file = Files.writeString(dir.resolve(fileName), settings);
        System.setProperty("dotproxy.config-file", file.toString());
        return new SettingsRereader(List.of("prod")).read(file);
    }

    private static Properties properties(String settings) throws IOException {
        Properties properties = new Properties();
        properties.load(new StringReader(settings));
        return properties;
    }
}
