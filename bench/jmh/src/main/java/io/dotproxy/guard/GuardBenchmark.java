package io.dotproxy.guard;

import io.dotproxy.guard.Admission.Verdict;
import io.dotproxy.net.Transport;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The guard's cost per query: the allow-list alone; the allow-list and a rate limit for one client
 * and for 10,000 clients taking turns (all admitted); one client blocked (the path a flood takes).
 * The rate limit reads {@link System#nanoTime()} once per query; the {@code CountingClock} variants
 * read a counter instead, to tell the limiter's own cost from the clock's. For comparison with
 * {@code rateLimitManyClientsCountingClock}: the 10,000 clients' buckets in an access-ordered
 * {@code LinkedHashMap<Long, ...>} (the table the limiter does not use), on the counting clock, with
 * no allow-list, blocks or counts.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class GuardBenchmark {
    private static final int CLIENTS = 10_000;

    /** The clients' address family: IPv4, or IPv6 (a distinct /64 each). */
    @Param({"ipv4", "ipv6"})
    String family;

    private Guard allowOnly;
    private Guard limited;
    private Guard limitedCountingClock;
    private long ticks;
    private Guard flooded;
    private InetSocketAddress one;
    private InetSocketAddress[] many;
    private int next;
    private LinkedHashMap<Long, double[]> boxedTable;

    @Setup
    public void setUp() throws UnknownHostException {
        AddressSet allow = AddressSet.parse(AddressSet.PRIVATE_NETWORKS);
        AddressSet none = AddressSet.parse(List.of());
        // Admits every query: a billion a second, a burst of two billion.
        RateLimiter.Settings generous = new RateLimiter.Settings(1e9, 2_000_000_000, Duration.ofSeconds(2),
                Duration.ofSeconds(60), 2, 32, 64, 100_000);
        // One query, then blocked for a day.
        RateLimiter.Settings strict = new RateLimiter.Settings(1, 1, Duration.ZERO, Duration.ofDays(1), 2, 32, 64, 100_000);
        allowOnly = new Guard(new Guard.Settings(allow, true, Optional.empty(), none), new GuardMetrics(new SimpleMeterRegistry()));
        limited = new Guard(new Guard.Settings(allow, true, Optional.of(generous), none), new GuardMetrics(new SimpleMeterRegistry()));
        // A microsecond a query: as fresh a time as the limiter needs, without the clock's cost.
        limitedCountingClock = new Guard(new Guard.Settings(allow, true, Optional.of(generous), none),
                new GuardMetrics(new SimpleMeterRegistry()), () -> ticks += 1_000);
        flooded = new Guard(new Guard.Settings(allow, true, Optional.of(strict), none), new GuardMetrics(new SimpleMeterRegistry()));
        many = new InetSocketAddress[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
            many[i] = new InetSocketAddress(address(i), 40_000 + i % 20_000);
        }
        one = many[0];
        boxedTable = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, double[]> eldest) {
                return size() > 100_000;
            }
        };
    }

    private InetAddress address(int i) throws UnknownHostException {
        if (family.equals("ipv4")) {
            return InetAddress.getByAddress(new byte[] {10, (byte) (i >>> 16), (byte) (i >>> 8), (byte) i});
        }
        byte[] octets = new byte[16];
        octets[0] = (byte) 0xFD;
        octets[6] = (byte) (i >>> 8);
        octets[7] = (byte) i;
        octets[15] = 1;
        return InetAddress.getByAddress(octets);
    }

    private InetSocketAddress nextClient() {
        InetSocketAddress client = many[next];
        next = next + 1 == CLIENTS ? 0 : next + 1;
        return client;
    }

    @Benchmark
    public Verdict allowListOnly() {
        return allowOnly.admit(one, Transport.UDP);
    }

    @Benchmark
    public Verdict rateLimitOneClient() {
        return limited.admit(one, Transport.UDP);
    }

    @Benchmark
    public Verdict rateLimitManyClients() {
        return limited.admit(nextClient(), Transport.UDP);
    }

    @Benchmark
    public Verdict rateLimitOneClientCountingClock() {
        return limitedCountingClock.admit(one, Transport.UDP);
    }

    @Benchmark
    public Verdict rateLimitManyClientsCountingClock() {
        return limitedCountingClock.admit(nextClient(), Transport.UDP);
    }

    @Benchmark
    public Verdict blockedClient() {
        return flooded.admit(one, Transport.UDP);
    }

    @Benchmark
    public boolean boxedTableManyClientsCountingClock() {
        byte[] octets = nextClient().getAddress().getAddress();
        long key = octets.length == 4 ? AddressBits.ipv4(octets) : AddressBits.high(octets);
        long now = ticks += 1_000;
        double[] bucket = boxedTable.get(key);
        if (bucket == null) {
            bucket = new double[] {1e9, now};
            boxedTable.put(key, bucket);
        }
        bucket[0] = Math.min(2e9, bucket[0] + (now - bucket[1]));
        bucket[1] = now;
        if (bucket[0] >= 1) {
            bucket[0] -= 1;
            return true;
        }
        return false;
    }
}
