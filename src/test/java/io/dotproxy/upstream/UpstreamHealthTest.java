package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.Eventually;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.channel.DefaultEventLoop;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The circuit breaker alone, on a real event loop with a scripted prober. */
class UpstreamHealthTest {
    private final DefaultEventLoop loop = new DefaultEventLoop();
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final AtomicInteger probes = new AtomicInteger();
    private final AtomicBoolean probeAnswers = new AtomicBoolean(false);

    @AfterEach
    void stop() {
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    }

    private UpstreamHealth health() {
        UpstreamHealth health = new UpstreamHealth("u", loop, Duration.ofMillis(40), Duration.ofMillis(200),
                new UpstreamMetrics(registry, "u"));
        health.setProber(result -> {
            probes.incrementAndGet();
            result.accept(probeAnswers.get());
        });
        return health;
    }

    private <T> T onLoop(Callable<T> action) throws Exception {
        return loop.submit(action).get(1, TimeUnit.SECONDS);
    }

    @Test
    void threeFailedQueriesInARowOpenTheCircuitAndAnAnswerResetsTheCount() throws Exception {
        UpstreamHealth health = health();
        onLoop(() -> {
            health.failed(UpstreamFailure.TIMEOUT);
            health.failed(UpstreamFailure.CLOSED);
            health.succeeded();
            health.failed(UpstreamFailure.TIMEOUT);
            health.failed(UpstreamFailure.TIMEOUT);
            return null;
        });
        assertEquals(UpstreamHealth.State.UP, health.state());
        onLoop(() -> {
            health.failed(UpstreamFailure.TIMEOUT);
            return null;
        });
        assertEquals(UpstreamHealth.State.DOWN, health.state());
    }

    @Test
    void ourOwnLimitsDoNotCountAgainstTheUpstream() throws Exception {
        UpstreamHealth health = health();
        onLoop(() -> {
            for (int i = 0; i < 10; i++) {
                health.failed(UpstreamFailure.OVERLOADED);
                health.failed(UpstreamFailure.UNAVAILABLE);
            }
            return null;
        });
        assertEquals(UpstreamHealth.State.UP, health.state());
    }

    @Test
    void connectFailureOpensAtOnceAndAnAnsweredProbeClosesIt() throws Exception {
        UpstreamHealth health = health();
        onLoop(() -> {
            health.failed(UpstreamFailure.CONNECT);
            return null;
        });
        assertEquals(UpstreamHealth.State.DOWN, health.state());
        waitFor(() -> probes.get() >= 2, "probed again after a failed probe");
        awaitDown(health, "the failed probes left the circuit open");
        probeAnswers.set(true);
        waitFor(() -> health.state() == UpstreamHealth.State.UP, "an answered probe closes the circuit");
        assertEquals(1.0, registry.find("dotproxy.upstream.probes").tag("result", "answered").functionCounter().count(), 0.0);
    }

    @Test
    void backOffIsCappedSoProbesNeverStop() throws Exception {
        UpstreamHealth health = health();
        onLoop(() -> {
            health.failed(UpstreamFailure.TLS);
            return null;
        });
        // 40 ms doubling, capped at 200 ms: a dozen probes fit in three seconds only if the cap holds.
        waitFor(() -> probes.get() >= 12, "probes keep coming at the capped back-off");
        awaitDown(health, "the failed probes left the circuit open");
    }

    @Test
    void realAnswerWhileDownClosesTheCircuit() throws Exception {
        UpstreamHealth health = health();
        onLoop(() -> {
            health.failed(UpstreamFailure.TLS);
            health.succeeded();
            return null;
        });
        assertEquals(UpstreamHealth.State.UP, health.state());
    }

    /**
     * The circuit is open (DOWN) once the probe that may still be in flight has failed: the state
     * reads HALF_OPEN from the probe's start until its result has run on the loop.
     */
    private static void awaitDown(UpstreamHealth health, String what) throws Exception {
        waitFor(() -> health.state() == UpstreamHealth.State.DOWN, what);
    }

    private static void waitFor(BooleanSupplier condition, String what) throws Exception {
        assertTrue(Eventually.holds(Duration.ofSeconds(5), Duration.ofMillis(5), condition::getAsBoolean), "timed out: " + what);
    }
}
