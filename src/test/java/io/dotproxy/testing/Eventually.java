package io.dotproxy.testing;

import java.time.Duration;
import java.util.function.Predicate;

/**
 * Waiting in tests for something the proxy does on its own time (a connection closing, a circuit
 * closing, an upstream coming back): try, pause, try again, within a bounded time. The caller
 * asserts on the outcome, so a wait that runs out fails with the caller's own message.
 */
public final class Eventually {
    private Eventually() {}

    /** One try; it may throw, which ends the wait (and the test). */
    @FunctionalInterface
    public interface Attempt<T> {
        T get() throws Exception;
    }

    /**
     * Calls {@code attempt} until its result satisfies {@code done} or {@code within} has passed,
     * pausing {@code pause} between calls, and returns the last result.
     */
    public static <T> T retry(Duration within, Duration pause, Attempt<T> attempt, Predicate<? super T> done)
            throws Exception {
        long giveUp = System.nanoTime() + within.toNanos();
        T result = attempt.get();
        while (!done.test(result) && System.nanoTime() - giveUp < 0) {
            if (!pause.isZero()) {
                Thread.sleep(pause.toMillis());
            }
            result = attempt.get();
        }
        return result;
    }

    /** Whether {@code condition} held within {@code within}, checked every {@code pause}. */
    public static boolean holds(Duration within, Duration pause, Attempt<Boolean> condition) throws Exception {
        return retry(within, pause, condition, held -> held);
    }
}
