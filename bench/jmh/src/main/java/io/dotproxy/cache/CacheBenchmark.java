package io.dotproxy.cache;

import io.dotproxy.dns.Message;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.Upstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.io.ByteArrayOutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The cache's hit path, and its lookup alone, over 10,000 names in the default 8 MiB cache (which
 * the working set fits in): {@code hitPath} is {@link CachingUpstream#answer} itself (hash, lookup
 * under the segment's lock, question check, copy out of the {@link AnswerLog}, ID/RD/case, aged
 * TTLs), the copy released at once; {@code lookup} is {@link ResponseCache#holds} (hash given: the
 * lock, the index, the record's expiry and question). The clock is {@link System#nanoTime()}, as in
 * the proxy. After each iteration the benchmark thread's own CPU time per operation is printed too
 * ({@code cpu ns/op}), which a busy shared machine disturbs far less than the wall time JMH reports.
 * (The Caffeine and LinkedHashMap stores it once compared were objects per entry; their numbers
 * are in bench/README.md, "Cache hit path".)
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class CacheBenchmark {
    private static final int NAMES = 10_000;
    private static final int SEQUENCE = 1 << 20;
    private static final long BUDGET = 8L << 20;
    private static final int TTL = 3600;

    /** The answer: one A record (~70 octets), or a CNAME and four A records (~150 octets). */
    @Param({"a", "cname4a"})
    String answer;

    /** The order names are asked in: each in turn, or Zipf-distributed (s = 1) over the 10,000. */
    @Param({"roundRobin", "zipf"})
    String keys;

    private ByteBuf[] queries;
    private Message[] parsed;
    private long[] hashes;
    private int[] order;
    private int next;

    private CachingUpstream caching;
    private ResponseCache cache;
    private final int prefetchAfter = 3; // the default dotproxy.cache.prefetch
    private final ByteBufAllocator alloc = ByteBufAllocator.DEFAULT;

    @Setup
    public void setUp() throws Exception {
        ResponseCache.Settings settings = new ResponseCache.Settings(true, BUDGET, Duration.ZERO, Duration.ofDays(1),
                Duration.ofHours(1), Duration.ofDays(1), Duration.ofMillis(400), prefetchAfter);
        CacheMetrics metrics = new CacheMetrics(new SimpleMeterRegistry());
        cache = new ResponseCache(settings, System::nanoTime, metrics);
        caching = new CachingUpstream(cache, settings, new Unreachable(), null, Duration.ofSeconds(2), metrics);

        queries = new ByteBuf[NAMES];
        parsed = new Message[NAMES];
        hashes = new long[NAMES];
        for (int i = 0; i < NAMES; i++) {
            byte[] name = name(i);
            queries[i] = Unpooled.directBuffer().writeBytes(query(i, name));
            parsed[i] = Message.parse(queries[i]);
            hashes[i] = Question.key(queries[i], parsed[i]);
            ByteBuf reply = Unpooled.directBuffer().writeBytes(answer.equals("a") ? answerA(i, name) : answerCname(i, name));
            cache.store(hashes[i], queries[i], parsed[i], reply);
            reply.release();
        }
        if (cache.entries() != NAMES) {
            throw new IllegalStateException("working set does not fit: " + cache.entries());
        }
        order = keys.equals("zipf") ? zipf(NAMES, SEQUENCE) : roundRobin(NAMES, SEQUENCE);
        for (int i = 0; i < NAMES; i++) { // every name hits
            ByteBuf out = caching.answer(queries[i], parsed[i], alloc);
            if (out == null) {
                throw new IllegalStateException("no hit: name " + i);
            }
            out.release();
        }
    }

    @TearDown
    public void tearDown() {
        for (ByteBuf query : queries) {
            query.release();
        }
    }

    private int nextIndex() {
        int i = order[next];
        next = (next + 1) & (SEQUENCE - 1);
        ops++;
        return i;
    }

    // On a shared machine the wall time per operation includes the time other processes held the
    // core; the thread's own CPU time per operation does not. Printed after each iteration
    // ("cpu ns/op"), warm-up included, from the benchmark thread.
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    private long ops;
    private long opsAtStart;
    private long cpuAtStart;

    @Setup(Level.Iteration)
    public void startIteration() {
        opsAtStart = ops;
        cpuAtStart = THREADS.getCurrentThreadCpuTime();
    }

    @TearDown(Level.Iteration)
    public void endIteration() {
        long cpu = THREADS.getCurrentThreadCpuTime() - cpuAtStart;
        System.out.printf(" cpu ns/op %.1f%n", (double) cpu / Math.max(1, ops - opsAtStart));
    }

    // --- the whole hit path: the answer's copy for the client, released at once ---

    @Benchmark
    public int hitPath() {
        int i = nextIndex();
        ByteBuf out = caching.answer(queries[i], parsed[i], alloc);
        int length = out.readableBytes();
        out.release();
        return length;
    }

    // --- the lookup alone: lock, index, expiry and question checks, the record marked used ---

    @Benchmark
    public boolean lookup() {
        int i = nextIndex();
        return cache.holds(hashes[i], queries[i], parsed[i], System.nanoTime());
    }

    // --- the working set ---

    /** An upstream the hit path never reaches. */
    private static final class Unreachable implements Upstream {
        @Override
        public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
            throw new IllegalStateException("a miss");
        }

        @Override
        public String name() {
            return "unreachable";
        }

        @Override
        public void close() {}
    }

    /** Names of 16–30 octets in 50 zones: {@code host-12345.zone-17.example.com.}, some shorter. */
    private static byte[] name(int i) {
        String text = (i % 3 == 0 ? "h" + i : "host-" + i) + ".zone-" + (i % 50) + (i % 2 == 0 ? ".example.com" : ".net");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (String label : text.split("\\.")) {
            out.write(label.length());
            out.writeBytes(label.getBytes(StandardCharsets.US_ASCII));
        }
        out.write(0);
        return out.toByteArray();
    }

    private static final byte[] OPT = {0, 0, 41, 4, (byte) 0xD0, 0, 0, 0, 0, 0, 0};

    /** The query as dig sends it: RD and AD, EDNS with a 1232-octet payload, no DO. */
    private static byte[] query(int i, byte[] name) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        header(out, i, 0x0120, 0, 1);
        out.writeBytes(name);
        out.writeBytes(new byte[] {0, 1, 0, 1});
        out.writeBytes(OPT);
        return out.toByteArray();
    }

    private static byte[] answerA(int i, byte[] name) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        header(out, i, 0x8180, 1, 1);
        out.writeBytes(name);
        out.writeBytes(new byte[] {0, 1, 0, 1});
        record(out, 0xC00C, 1, new byte[] {(byte) 192, 0, 2, (byte) i});
        out.writeBytes(OPT);
        return out.toByteArray();
    }

    /** The name's CNAME to {@code edge-N.cdn.example.net} and four A records of that name. */
    private static byte[] answerCname(int i, byte[] name) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        header(out, i, 0x8180, 5, 1);
        out.writeBytes(name);
        out.writeBytes(new byte[] {0, 1, 0, 1});
        int target = out.size() + 12; // the CNAME's RDATA: after the question and the record's fixed fields
        String edge = "edge-" + (i % 97);
        ByteArrayOutputStream rdata = new ByteArrayOutputStream();
        rdata.write(edge.length());
        rdata.writeBytes(edge.getBytes(StandardCharsets.US_ASCII));
        for (String label : new String[] {"cdn", "example", "net"}) {
            rdata.write(label.length());
            rdata.writeBytes(label.getBytes(StandardCharsets.US_ASCII));
        }
        rdata.write(0);
        record(out, 0xC00C, 5, rdata.toByteArray());
        for (int a = 0; a < 4; a++) {
            record(out, 0xC000 | target, 1, new byte[] {(byte) 198, 51, (byte) a, (byte) i});
        }
        out.writeBytes(OPT);
        return out.toByteArray();
    }

    private static void header(ByteArrayOutputStream out, int id, int flags, int ancount, int arcount) {
        out.writeBytes(new byte[] {(byte) (id >>> 8), (byte) id, (byte) (flags >>> 8), (byte) flags, 0, 1,
                0, (byte) ancount, 0, 0, 0, (byte) arcount});
    }

    private static void record(ByteArrayOutputStream out, int pointer, int type, byte[] rdata) {
        out.writeBytes(new byte[] {(byte) (pointer >>> 8), (byte) pointer, 0, (byte) type, 0, 1,
                (byte) (TTL >>> 24), (byte) (TTL >>> 16), (byte) (TTL >>> 8), (byte) TTL,
                (byte) (rdata.length >>> 8), (byte) rdata.length});
        out.writeBytes(rdata);
    }

    private static int[] roundRobin(int names, int length) {
        int[] order = new int[length];
        for (int i = 0; i < length; i++) {
            order[i] = i % names;
        }
        return order;
    }

    /** Zipf (s = 1) over the names, the ranks shuffled over the names so hot entries are not neighbours. */
    private static int[] zipf(int names, int length) {
        SplittableRandom random = new SplittableRandom(42);
        double[] cdf = new double[names];
        double sum = 0;
        for (int r = 0; r < names; r++) {
            sum += 1.0 / (r + 1);
            cdf[r] = sum;
        }
        int[] byRank = new int[names];
        for (int r = 0; r < names; r++) {
            byRank[r] = r;
        }
        for (int r = names - 1; r > 0; r--) {
            int j = random.nextInt(r + 1);
            int t = byRank[r];
            byRank[r] = byRank[j];
            byRank[j] = t;
        }
        int[] order = new int[length];
        for (int i = 0; i < length; i++) {
            double u = random.nextDouble() * sum;
            int lo = 0;
            int hi = names - 1;
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (cdf[mid] < u) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            order[i] = byRank[lo];
        }
        return order;
    }
}
