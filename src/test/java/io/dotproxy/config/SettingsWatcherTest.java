package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.Eventually;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The settings file watched as Kubernetes updates a mounted ConfigMap: a new timestamped directory,
 * then the {@code ..data} symlink swapped to it in one rename.
 */
class SettingsWatcherTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @TempDir
    Path mount;

    private final List<String> events = new CopyOnWriteArrayList<>();
    private final SettingsWatcher.Listener listener = new SettingsWatcher.Listener() {
        @Override
        public void changed() {
            events.add("changed");
        }

        @Override
        public void unreadable(String reason) {
            events.add("unreadable");
        }
    };

    /** Writes a ConfigMap version as the kubelet does and points {@code ..data} at it. */
    private void publish(String version, String contents) throws IOException {
        Path versionDir = Files.createDirectory(mount.resolve("..2026_12_04_" + version));
        Files.writeString(versionDir.resolve("settings.properties"), contents);
        Path staging = Files.createSymbolicLink(mount.resolve("..data_tmp"), versionDir.getFileName());
        Files.move(staging, mount.resolve("..data"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    private Path mounted(String contents) throws IOException {
        publish("v1", contents);
        return Files.createSymbolicLink(mount.resolve("settings.properties"), Path.of("..data", "settings.properties"));
    }

    @Test
    void aSymlinkSwapIsOneChangeAndTheBaselineIsNone() throws Exception {
        Path file = mounted("dotproxy.timeout=2s\n");
        try (SettingsWatcher watcher = new SettingsWatcher(file, Duration.ofMinutes(1), listener)) {
            Thread.sleep(300);
            assertEquals(List.of(), events, "the contents at the start are the baseline");

            publish("v2", "dotproxy.timeout=3s\n");

            assertTrue(Eventually.holds(WAIT, Duration.ofMillis(20), () -> events.equals(List.of("changed"))), events.toString());
            publish("v3", "dotproxy.timeout=3s\n"); // same contents, new version: nothing to apply
            Thread.sleep(500);
            assertEquals(List.of("changed"), events);
        }
    }

    @Test
    void aChangeTheEventsMissIsFoundByTheRecheck() throws Exception {
        // The file is a symlink into a directory the watcher does not watch: no event comes.
        Path elsewhere = Files.createDirectory(mount.resolve("elsewhere"));
        Path real = Files.writeString(elsewhere.resolve("real.properties"), "dotproxy.timeout=2s\n");
        Path watchedDir = Files.createDirectory(mount.resolve("watched"));
        Path file = Files.createSymbolicLink(watchedDir.resolve("settings.properties"), real);
        try (SettingsWatcher watcher = new SettingsWatcher(file, Duration.ofMillis(200), listener)) {
            Files.writeString(real, "dotproxy.timeout=4s\n");

            assertTrue(Eventually.holds(WAIT, Duration.ofMillis(20), () -> events.equals(List.of("changed"))), events.toString());
        }
    }

    @Test
    void aVanishedFileIsReportedOnceAndItsReturnWithOtherContentsIsAChange() throws Exception {
        Path file = Files.writeString(mount.resolve("settings.properties"), "dotproxy.timeout=2s\n");
        try (SettingsWatcher watcher = new SettingsWatcher(file, Duration.ofMillis(200), listener)) {
            Files.delete(file);
            assertTrue(Eventually.holds(WAIT, Duration.ofMillis(20), () -> events.equals(List.of("unreadable"))), events.toString());
            Thread.sleep(600); // several rechecks: still reported once
            assertEquals(List.of("unreadable"), events);

            Files.writeString(file, "dotproxy.timeout=5s\n");

            assertTrue(Eventually.holds(WAIT, Duration.ofMillis(20),
                    () -> events.equals(List.of("unreadable", "changed"))), events.toString());
        }
    }
}
