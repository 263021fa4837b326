package io.dotproxy.config;

import io.micrometer.prometheus.PrometheusMeterRegistry;
import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.ShutdownDelayInitiatedEvent;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.config.SmallRyeConfig;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.util.concurrent.EventExecutor;
import io.vertx.core.Vertx;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.eclipse.microprofile.config.ConfigProvider;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * Starts the proxy with Quarkus: reads the configuration into one {@link ProxySettings} value,
 * assembles it with {@link ProxyRuntime} on Vert.x's event loops (one lane each), and stops it at shutdown.
 * Only this class and {@link SettingsReader} read {@link ProxyConfig}; a value the proxy cannot
 * use stops start-up with one line naming the setting, the value and what is allowed.
 */
@ApplicationScoped
public class Setup {
    private static final Logger LOG = Logger.getLogger(Setup.class);

    @Inject
    ProxyConfig config;

    /** The seed tool's variable, in its exact spelling; it replaces {@code dotproxy.upstreams}. */
    @ConfigProperty(name = "DoT_HOST")
    Optional<String> dotHost;

    @Inject
    Vertx vertx;

    /**
     * The proxy's meters go straight into the Prometheus registry that {@code /q/metrics} reads,
     * not through Quarkus's global composite: a timer recorded through the composite walks its
     * children on every query, and a composite keeps nothing recorded before a child is attached.
     */
    @Inject
    PrometheusMeterRegistry registry;

    private volatile ProxyRuntime runtime;
    private volatile SettingsReloader reloader;
    private final AtomicBoolean stopped = new AtomicBoolean();

    void start(@Observes StartupEvent event) {
        try {
            ProxySettings settings = SettingsReader.read(config, dotHost);
            warnOfMaskedKeys();
            List<EventLoop> loops = eventLoops(vertx.nettyEventLoopGroup(), settings.listen().eventLoops(),
                    config.eventLoops().isPresent());
            ProxyRuntime assembled = ProxyRuntime.assemble(settings, loops, registry);
            assembled.start();
            runtime = assembled;
            watchSettingsFile(assembled, loops.get(0));
        } catch (ConfigError | UncheckedIOException e) {
            LOG.error(e.getMessage()); // a user error: one line, no stack trace
            Quarkus.asyncExit(1);
        }
    }

    /**
     * {@code wanted} distinct loops of Vert.x's event loop group (which Quarkus sizes at twice the
     * CPUs); the HTTP server's loops among them too, which carry only probes and scrapes.
     *
     * @param asked whether {@code dotproxy.event-loops} was set; unset, the default (a lane per CPU)
     *     is cut to the group's size instead of failing
     * @throws ConfigError when the group has fewer than were asked for
     */
    static List<EventLoop> eventLoops(EventLoopGroup group, int wanted, boolean asked) {
        List<EventLoop> loops = new ArrayList<>();
        for (EventExecutor executor : group) {
            if (executor instanceof EventLoop loop && loops.size() < wanted) {
                loops.add(loop);
            }
        }
        if (loops.size() < wanted && asked) {
            throw new ConfigError("dotproxy.event-loops", wanted, "1 to " + loops.size()
                    + " here (Vert.x's event loops; quarkus.vertx.event-loops-pool-size raises it)");
        }
        return loops;
    }

    /** Applies the settings file whenever it changes, when one is named. */
    private void watchSettingsFile(ProxyRuntime running, EventLoop loop) {
        Optional<Path> file = SettingsFile.named(config.configFile());
        if (file.isEmpty()) {
            return;
        }
        List<String> profiles = ConfigProvider.getConfig().unwrap(SmallRyeConfig.class).getProfiles();
        try {
            reloader = new SettingsReloader(file.get(), new SettingsRereader(profiles), running, loop, registry);
        } catch (IOException e) {
            LOG.warnf("Cannot watch %s (%s): its changes apply at the next start only", file.get(), e.getMessage());
        }
    }

    /** The generation of the settings in force: 1 as read at start-up, one more for each change applied since. */
    public long settingsGeneration() {
        SettingsReloader watching = reloader;
        return watching == null ? 1 : watching.generation();
    }

    /** One warning per key of the settings file that an environment variable or -D overrides. */
    private void warnOfMaskedKeys() {
        Optional<Path> file = SettingsFile.named(config.configFile());
        if (file.isEmpty()) {
            return;
        }
        SmallRyeConfig all = ConfigProvider.getConfig().unwrap(SmallRyeConfig.class);
        SettingsFile.maskedKeys(all, file.get()).forEach(LOG::warn);
        LOG.infof("Settings read from %s", file.get());
    }

    /**
     * The graceful stop, on SIGTERM. Quarkus' pre-shutdown phase ({@code quarkus.shutdown.delay-enabled})
     * fires this before it stops anything, so the HTTP server still answers the probes ("draining")
     * while this observer waits, off the DNS event loop, for the drain delay and the queries in
     * flight; {@link ShutdownEvent} comes only after the HTTP server has closed. Quarkus' own delay
     * ({@code quarkus.shutdown.delay}) stays unset: {@code dotproxy.shutdown.drain-delay} is the one
     * setting, checked like the others, and the drain is the code the component tests run.
     */
    void drain(@Observes ShutdownDelayInitiatedEvent event) {
        stopOnce();
    }

    /** The stop without a pre-shutdown phase (where Quarkus has none): the same drain. */
    void stop(@Observes ShutdownEvent event) {
        stopOnce();
    }

    private void stopOnce() {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        if (reloader != null) {
            reloader.close();
        }
        if (runtime != null) {
            runtime.drain();
        }
    }

    /** The running proxy, once start-up has bound its listeners. */
    public Optional<ProxyRuntime> runtime() {
        return Optional.ofNullable(runtime);
    }
}
