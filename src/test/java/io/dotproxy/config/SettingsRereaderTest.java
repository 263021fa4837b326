package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Settings read again as start-up read them: application.properties under the profile, the settings
 * file over it, -D over the file; and a changed file read anew.
 */
class SettingsRereaderTest {
    @TempDir
    Path dir;

    @AfterEach
    void clearSystemProperties() {
        System.clearProperty("dotproxy.config-file");
        System.clearProperty("dotproxy.policy");
    }

    @Test
    void readsTheSameSourcesInTheSameOrderAndAChangedFileAnew() throws IOException {
        Path file = Files.writeString(dir.resolve("settings.properties"),
                "dotproxy.timeout=3s\ndotproxy.policy=failover\n");
        System.setProperty("dotproxy.config-file", file.toString());
        System.setProperty("dotproxy.policy", "random");
        SettingsRereader rereader = new SettingsRereader(List.of("test"));

        ProxySettings first = rereader.read();
        assertEquals(0, first.listen().port(), "application.properties under the test profile (%test: 0)");
        assertEquals(Duration.ofSeconds(3), first.pipeline().timeout(), "from the file");
        assertEquals("random", first.forwarding().policy(), "-D over the file");

        Files.writeString(file, "dotproxy.timeout=4s\n");
        ProxySettings second = rereader.read();
        assertEquals(Duration.ofSeconds(4), second.pipeline().timeout(), "the file as it is now");
        assertEquals(Set.of(SettingsChange.Part.PIPELINE), SettingsChange.between(first, second).changed());
    }

    @Test
    void readsConfigApplicationPropertiesAndDotEnvInTheWorkingDirectoryAsStartUpDoes() throws IOException {
        Path workingDirectory = Files.createDirectory(dir.resolve("work"));
        Files.createDirectory(workingDirectory.resolve("config"));
        Files.writeString(workingDirectory.resolve("config").resolve("application.properties"),
                "dotproxy.timeout=7s\ndotproxy.policy=round-robin\n");
        Files.writeString(workingDirectory.resolve(".env"), "DOTPROXY_POLICY=random\n");

        ProxySettings settings = new SettingsRereader(List.of("test"), workingDirectory).read();

        assertEquals(Duration.ofSeconds(7), settings.pipeline().timeout(), "config/application.properties over the jar's");
        assertEquals("random", settings.forwarding().policy(), ".env over config/application.properties");
        assertEquals(0, settings.listen().port(), "the jar's application.properties still under them");
    }

    @Test
    void aReadingSaysWhichKeysOfTheFileAreMasked() throws IOException {
        Path file = Files.writeString(dir.resolve("settings.properties"), "dotproxy.timeout=3s\ndotproxy.policy=failover\n");
        System.setProperty("dotproxy.config-file", file.toString());
        System.setProperty("dotproxy.policy", "random");

        SettingsRereader.Reading reading = new SettingsRereader(List.of("test")).read(file);

        assertEquals(Duration.ofSeconds(3), reading.settings().pipeline().timeout());
        assertEquals(List.of("dotproxy.policy in " + file + " has no effect: -Ddotproxy.policy sets it too"),
                reading.maskedKeys());
    }

    @Test
    void aBadValueInTheChangedFileIsTheStartUpsOneLine() throws IOException {
        Path file = Files.writeString(dir.resolve("settings.properties"), "dotproxy.max-in-flight=0\n");
        System.setProperty("dotproxy.config-file", file.toString());

        ConfigError error = assertThrows(ConfigError.class, () -> new SettingsRereader(List.of("test")).read());

        assertEquals("Invalid configuration: dotproxy.max-in-flight=0: expected a whole number from 1 to 1000000",
                error.getMessage());
    }

    @Test
    void underTheProductionProfileTheProductionPortHolds() {
        assertEquals(53, new SettingsRereader(List.of("prod")).read().listen().port());
    }
}
