package io.dotproxy.guard;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.dotproxy.guard.Admission.Verdict;
import io.dotproxy.net.Transport;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;

/**
 * The rate limiter's table and buckets against a model built on an access-ordered
 * {@link LinkedHashMap}: for any sequence of queries from a few clients, at any pace, both give
 * the same verdicts and track as many clients. Blocks are off here; they have their own tests.
 */
class RateLimiterModelTest {
    /** A query from client {@code client} (0 to 9) after {@code quarterSeconds} of quiet. */
    record Step(int client, int quarterSeconds) {}

    @Property(tries = 1000)
    void agreesWithTheModel(@ForAll @IntRange(min = 1, max = 5) int maxClients,
                            @ForAll @IntRange(min = 1, max = 3) int burst,
                            @ForAll("rates") int qps,
                            @ForAll("steps") List<Step> steps) {
        FakeClock clock = new FakeClock();
        RateLimiter limiter = new RateLimiter(
                new RateLimiter.Settings(qps, burst, Duration.ZERO, Duration.ZERO, 0, 32, 64, maxClients),
                new GuardMetrics(new SimpleMeterRegistry()), clock);
        Model model = new Model(maxClients, burst, qps);
        long nowMs = 0;
        for (Step step : steps) {
            clock.advanceMillis(step.quarterSeconds * 250L);
            nowMs += step.quarterSeconds * 250L;
            Verdict expected = model.check(step.client, nowMs);
            assertEquals(expected, limiter.checkIpv4(0x0A000000 | step.client, Transport.UDP), () -> "at " + step);
            assertEquals(model.clients.size(), limiter.trackedClients());
        }
    }

    @Provide
    Arbitrary<Integer> rates() {
        return Arbitraries.of(1, 2, 4); // whole tokens per quarter second or fractions exact in binary
    }

    @Provide
    Arbitrary<List<Step>> steps() {
        Arbitrary<Integer> pace = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.just(0)),
                Tuple.of(3, Arbitraries.integers().between(1, 4)),
                Tuple.of(1, Arbitraries.integers().between(5, 16)));
        return Combinators.combine(Arbitraries.integers().between(0, 9), pace).as(Step::new).list().ofMaxSize(200);
    }

    /** Token buckets in a bounded LinkedHashMap; the idle are forgotten as the limiter does. */
    private static final class Model {
        final Map<Integer, double[]> clients = new LinkedHashMap<>(16, 0.75f, true); // tokens, last (ms)
        final int max;
        final int burst;
        final int qps;

        Model(int max, int burst, int qps) {
            this.max = max;
            this.burst = burst;
            this.qps = qps;
        }

        Verdict check(int client, long nowMs) {
            Iterator<double[]> oldest = clients.values().iterator();
            for (int i = 0; i < 2 && oldest.hasNext(); i++) {
                if (nowMs - oldest.next()[1] < burst * 1000.0 / qps) {
                    break;
                }
                oldest.remove();
            }
            double[] bucket = clients.get(client);
            if (bucket == null) {
                if (clients.size() == max) {
                    clients.remove(clients.keySet().iterator().next());
                }
                bucket = new double[] {burst, nowMs};
                clients.put(client, bucket);
            }
            bucket[0] = Math.min(burst, bucket[0] + (nowMs - bucket[1]) * qps / 1000.0);
            bucket[1] = nowMs;
            if (bucket[0] >= 1) {
                bucket[0] -= 1;
                return Verdict.ADMIT;
            }
            return Verdict.DROP;
        }
    }
}
