package io.dotproxy.upstream;

import io.netty.channel.EventLoop;
import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.jboss.logging.Logger;

/**
 * Whether an upstream should get queries: a circuit breaker fed by the outcome of real queries
 * (passive) and, while it is open, by probes (active).
 *
 * <p>A failed connect or handshake opens the circuit at once; {@value #FAILURES_TO_OPEN} failed
 * queries in a row (timeouts, broken connections) open it too. While open (DOWN) the upstream is
 * probed after a jittered exponential back-off, doubling from one second up to five minutes (the
 * cap RFC 2308 §7.2 gives for remembering a dead server). The probe is the half-open trial: it
 * closes the circuit (UP) or opens it again for longer. A real answer closes it at any time, so
 * nothing stays down forever and a blip that downed every upstream heals by itself.
 *
 * <p>One circuit per upstream, shared by the members of every lane ({@link Standing}): state
 * changes run on its home event loop, and a report from another lane hops there, except an answer
 * while all is well, which changes nothing and so costs no hop. The state may be read from any thread.
 */
public final class UpstreamHealth {
    /** Circuit states. */
    public enum State {
        /** Gets queries. */
        UP,
        /** Gets no queries (unless every upstream is down); a probe is scheduled. */
        DOWN,
        /** A probe is in flight. */
        HALF_OPEN
    }

    /** Sends one probe and reports whether any answer came back. */
    @FunctionalInterface
    public interface Prober {
        void probe(Consumer<Boolean> result);
    }

    static final int FAILURES_TO_OPEN = 3;
    private static final Logger LOG = Logger.getLogger(UpstreamHealth.class);

    private final String name;
    private final EventLoop loop;
    private final Duration firstBackOff;
    private final Duration maxBackOff;
    private final UpstreamMetrics metrics;
    private Prober prober;

    private volatile State state = State.UP;
    private volatile boolean closed;
    private volatile long lastFailureNanos = Long.MIN_VALUE;
    private volatile int consecutiveFailures; // read by other lanes' answers (the fast path of succeeded)
    private int timesDown;

    public UpstreamHealth(String name, EventLoop loop, Duration firstBackOff, Duration maxBackOff, UpstreamMetrics metrics) {
        this.name = name;
        this.loop = loop;
        this.firstBackOff = firstBackOff;
        this.maxBackOff = maxBackOff;
        this.metrics = metrics;
        metrics.trackState(this);
    }

    /** Stops probing: the upstream is being closed. */
    void close() {
        closed = true;
    }

    /** The meters of this upstream (its health feeds some of them). */
    UpstreamMetrics metrics() {
        return metrics;
    }

    void setProber(Prober prober) {
        this.prober = prober;
    }

    public State state() {
        return state;
    }

    public boolean isUp() {
        return state == State.UP;
    }

    /** When the last failure was seen ({@link System#nanoTime()}), or {@code Long.MIN_VALUE}. */
    public long lastFailureNanos() {
        return lastFailureNanos;
    }

    /** An answer came back. */
    void succeeded() {
        if (state == State.UP && consecutiveFailures == 0) {
            return; // the common case, from any lane: nothing to change
        }
        if (!loop.inEventLoop()) {
            hop(this::succeeded);
            return;
        }
        consecutiveFailures = 0;
        if (state != State.UP) {
            LOG.infof("Upstream %s is up again", name);
            state = State.UP;
            timesDown = 0;
        }
    }

    /** An attempt failed for this reason. */
    void failed(UpstreamFailure failure) {
        if (!loop.inEventLoop()) {
            hop(() -> failed(failure));
            return;
        }
        switch (failure) {
            case OVERLOADED, UNAVAILABLE -> {
                return; // our own limits, not the upstream's health
            }
            case CONNECT, TLS -> {
                lastFailureNanos = System.nanoTime();
                open(failure);
            }
            default -> {
                lastFailureNanos = System.nanoTime();
                if (++consecutiveFailures >= FAILURES_TO_OPEN) {
                    open(failure);
                }
            }
        }
    }

    /** Runs a report from another lane on the circuit's loop; nothing once that loop has shut down (a stop). */
    private void hop(Runnable report) {
        try {
            loop.execute(report);
        } catch (RejectedExecutionException stopping) {
            // The process is stopping: the circuit's state no longer matters, the caller's query does.
        }
    }

    private void open(UpstreamFailure cause) {
        if (state == State.DOWN || closed) {
            return; // a probe is already scheduled, or none is wanted any more
        }
        if (state == State.UP) {
            LOG.warnf("Upstream %s is down (%s); probing it with back-off", name, cause.tag());
        }
        state = State.DOWN;
        consecutiveFailures = 0;
        timesDown++;
        long cap = maxBackOff.toNanos();
        long exponential = timesDown >= 30 ? cap : Math.min(cap, firstBackOff.toNanos() << (timesDown - 1));
        // Jitter in [1/2, 1] of the back-off, so that replicas do not probe in step.
        long delay = exponential / 2 + ThreadLocalRandom.current().nextLong(exponential / 2 + 1);
        loop.schedule(this::probe, delay, TimeUnit.NANOSECONDS);
    }

    private void probe() {
        if (state != State.DOWN || prober == null || closed) {
            return; // real traffic already brought it back
        }
        state = State.HALF_OPEN;
        prober.probe(answered -> loop.execute(() -> {
            metrics.probe(answered);
            if (answered) {
                succeeded();
            } else if (state == State.HALF_OPEN) {
                open(UpstreamFailure.TIMEOUT);
            }
        }));
    }
}
