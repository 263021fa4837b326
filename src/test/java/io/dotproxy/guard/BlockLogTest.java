package io.dotproxy.guard;

import static io.dotproxy.guard.Addresses.ip;
import static io.dotproxy.net.Transport.TCP;
import static io.dotproxy.net.Transport.UDP;
import static java.time.Duration.ofSeconds;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.jboss.logmanager.ExtLogRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The rate limiter's log, as the JBoss LogManager (Quarkus's, and the tests' through surefire)
 * receives it: one WARN line when a block starts, naming the client's prefix, and nothing at INFO
 * or above for the queries it limits or denies.
 */
class BlockLogTest {
    private final List<String> lines = new ArrayList<>();
    private final Logger logger = Logger.getLogger(RateLimiter.class.getName());
    private final Handler capture = new Handler() {
        @Override
        public void publish(LogRecord record) {
            if (record.getLevel().intValue() >= Level.INFO.intValue()) {
                lines.add(record.getLevel() + " " + ((ExtLogRecord) record).getFormattedMessage());
            }
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
    };

    @BeforeEach
    void capture() {
        assertInstanceOf(org.jboss.logmanager.Logger.class, logger, "the JBoss LogManager is the JUL manager");
        logger.addHandler(capture);
    }

    @AfterEach
    void release() {
        logger.removeHandler(capture);
    }

    @Test
    void oneWarnLineForEachBlockAndNoneForEachQuery() {
        FakeClock clock = new FakeClock();
        RateLimiter limiter = new RateLimiter(new RateLimiter.Settings(100, 200, ofSeconds(2), ofSeconds(60), 2, 32, 64, 100),
                new GuardMetrics(new SimpleMeterRegistry()), clock);
        InetAddress client = ip("10.0.0.5");
        // 1,000 q/s for 3 minutes: over the limit for 2 s, blocked for 60 s, and again, and again.
        for (int ms = 0; ms < 180_000; ms++) {
            limiter.check(client, ms % 10 == 0 ? TCP : UDP);
            clock.advanceMillis(1);
        }
        String line = "WARN Client 10.0.0.5/32 blocked for 60s: over 100 q/s for 2s";
        assertEquals(List.of(line, line, line), lines);
    }

    @Test
    void theLineNamesAnIpv6PrefixAndFractionalSettings() {
        FakeClock clock = new FakeClock();
        RateLimiter limiter = new RateLimiter(
                new RateLimiter.Settings(0.5, 1, Duration.ofMillis(1500), ofSeconds(90), 0, 32, 48, 100),
                new GuardMetrics(new SimpleMeterRegistry()), clock);
        // A query each 500 ms: over from 500 ms, a token at 2,000 ms, blocked at 2,500 ms.
        for (int i = 0; i < 8; i++) {
            limiter.check(ip("2001:db8:abcd:12::1"), UDP);
            clock.advanceMillis(500);
        }
        assertEquals(List.of("WARN Client 2001:db8:abcd::/48 blocked for 90s: over 0.5 q/s for 1500ms"), lines);
    }
}
