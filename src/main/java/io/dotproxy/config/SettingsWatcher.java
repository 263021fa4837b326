package io.dotproxy.config;

import java.io.IOException;
import java.nio.file.ClosedWatchServiceException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * Tells when the settings file's contents change. Kubernetes updates a mounted ConfigMap by
 * writing a new timestamped directory and swapping the {@code ..data} symlink to it in one rename,
 * so the file's own path never sees a write: the watcher watches the file's directory for any
 * event, and compares the file's contents (a SHA-256 digest), never times. Events can be missed
 * (inotify queues overflow; some file systems have none), so it also re-checks every {@code
 * recheck}. A file that cannot be read is reported once until it can be read again; the settings
 * in force stay meanwhile.
 *
 * <p>It runs on a thread of its own (file system calls block); the listener is called there.
 */
final class SettingsWatcher implements AutoCloseable {
    /** What the watcher reports. */
    interface Listener {
        /** The file's contents differ from the last contents seen. */
        void changed();

        /** The file cannot be read now (gone, say); called once until it can be read again. */
        void unreadable(String reason);
    }

    private static final Logger LOG = Logger.getLogger(SettingsWatcher.class);
    // A kubelet update is several renames in a row: wait for them to settle before reading.
    private static final long SETTLE_MILLIS = 50;

    private final Path file;
    private final long recheckMillis;
    private final Listener listener;
    private final WatchService watchService;
    private final Thread thread;
    private byte[] lastDigest;
    private boolean reportedUnreadable;
    private volatile boolean running = true;

    /**
     * Starts watching; the contents as they are now are the baseline, not a change.
     *
     * @throws IOException when the file's directory cannot be watched
     */
    SettingsWatcher(Path file, Duration recheck, Listener listener) throws IOException {
        this.file = file.toAbsolutePath();
        this.recheckMillis = recheck.toMillis();
        this.listener = listener;
        this.watchService = FileSystems.getDefault().newWatchService();
        this.file.getParent().register(watchService, StandardWatchEventKinds.ENTRY_CREATE,
                StandardWatchEventKinds.ENTRY_MODIFY, StandardWatchEventKinds.ENTRY_DELETE);
        this.lastDigest = digest();
        this.thread = new Thread(this::watch, "dot-proxy-settings-watcher");
        thread.setDaemon(true);
        thread.start();
    }

    private void watch() {
        while (running) {
            try {
                WatchKey key = watchService.poll(recheckMillis, TimeUnit.MILLISECONDS);
                if (key != null) {
                    TimeUnit.MILLISECONDS.sleep(SETTLE_MILLIS);
                    key.pollEvents();
                    key.reset();
                }
                check();
            } catch (InterruptedException | ClosedWatchServiceException e) {
                return; // closed
            } catch (RuntimeException e) {
                LOG.warnf(e, "The settings file watcher failed a check; it goes on");
            }
        }
    }

    private void check() {
        byte[] digest = digest();
        if (digest == null || Arrays.equals(digest, lastDigest)) {
            return;
        }
        lastDigest = digest;
        listener.changed();
    }

    /** The digest of the file's contents now, or null when it cannot be read (reported once). */
    private byte[] digest() {
        byte[] contents;
        try {
            contents = Files.readAllBytes(file);
        } catch (IOException e) {
            if (!reportedUnreadable && lastDigest != null) {
                reportedUnreadable = true;
                listener.unreadable(e.getClass().getSimpleName() + ": " + e.getMessage());
            }
            return null;
        }
        reportedUnreadable = false;
        try {
            return MessageDigest.getInstance("SHA-256").digest(contents);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            watchService.close();
        } catch (IOException e) {
            LOG.debugf(e, "Closing the settings file watcher");
        }
    }
}
