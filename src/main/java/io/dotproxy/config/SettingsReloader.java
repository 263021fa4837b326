package io.dotproxy.config;

import io.dotproxy.metrics.Tally;
import io.dotproxy.upstream.TlsClientContext;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.netty.channel.EventLoop;
import io.smallrye.config.ConfigValidationException;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * Applies the settings file whenever its contents change: reads the settings again
 * ({@link SettingsRereader}), checks them as start-up does, and applies them on the event loop
 * ({@link ProxyRuntime#apply}). A file that does not pass is rejected whole: its one line is logged,
 * {@code dotproxy_config_reloads_total{result="rejected"}} goes up, and the settings in force stay.
 * {@code dotproxy_config_generation} counts the settings applied, 1 at start-up.
 */
final class SettingsReloader implements SettingsWatcher.Listener, AutoCloseable {
    /** How often the file is read again even without a file system event. */
    static final Duration RECHECK = Duration.ofSeconds(10);

    private static final Logger LOG = Logger.getLogger(SettingsReloader.class);

    private final Path file;
    private final SettingsRereader rereader;
    private final ProxyRuntime runtime;
    private final EventLoop loop;
    private final Tally applied;
    private final Tally unchanged;
    private final Tally rejected;
    private final AtomicLong generation = new AtomicLong(1);
    private final SettingsWatcher watcher;

    /** Starts watching {@code file}; the settings in force are generation 1. */
    SettingsReloader(Path file, SettingsRereader rereader, ProxyRuntime runtime, EventLoop loop, MeterRegistry registry)
            throws IOException {
        this.file = file;
        this.rereader = rereader;
        this.runtime = runtime;
        this.loop = loop;
        String help = "Changes of the settings file, by what became of them";
        applied = Tally.register(registry, "dotproxy.config.reloads", help, "result", "applied");
        unchanged = Tally.register(registry, "dotproxy.config.reloads", help, "result", "unchanged");
        rejected = Tally.register(registry, "dotproxy.config.reloads", help, "result", "rejected");
        Gauge.builder("dotproxy.config.generation", generation, AtomicLong::get)
                .description("Settings applied since start, 1 being those read at start-up")
                .register(registry);
        watcher = new SettingsWatcher(file, RECHECK, this);
    }

    /** The generation of the settings in force. */
    long generation() {
        return generation.get();
    }

    @Override
    public void changed() {
        ProxySettings next;
        TlsClientContext tls;
        try {
            SettingsRereader.Reading reading = rereader.read(file);
            reading.maskedKeys().forEach(LOG::warn);
            next = reading.settings();
            tls = ProxyRuntime.tlsFor(next.forwarding().caFile()); // here, not on the event loop
        } catch (ConfigError e) {
            reject(e.getMessage());
            return;
        } catch (ConfigValidationException e) {
            reject(String.join("; ", ConfigProblems.describe(e)));
            return;
        } catch (RuntimeException e) {
            reject(e.getMessage());
            return;
        }
        loop.execute(() -> apply(next, tls));
    }

    private void apply(ProxySettings next, TlsClientContext tls) {
        ProxySettings before = runtime.settings();
        ProxyRuntime.Applied result = runtime.apply(next, tls);
        if (result.change().isEmpty()) {
            unchanged.increment();
            LOG.infof("Settings file %s changed, the settings did not", file);
            return;
        }
        applied.increment();
        if (!runtime.settings().equals(before)) {
            // The generation says what serves: it moves once new upstreams have taken over.
            result.inForce().addListener(done -> LOG.infof("Settings from %s applied (generation %d): %s", file,
                    generation.incrementAndGet(), result.change().changed()));
        }
        if (!result.needsRestart().isEmpty()) {
            LOG.warnf("Settings from %s that need a restart to apply: %s", file, String.join(", ", result.needsRestart()));
        }
    }

    private void reject(String line) {
        rejected.increment();
        LOG.errorf("Settings file %s rejected, the settings in force stay: %s", file, line);
    }

    @Override
    public void unreadable(String reason) {
        LOG.warnf("Settings file %s cannot be read (%s): the settings in force stay", file, reason);
    }

    @Override
    public void close() {
        watcher.close();
    }
}
