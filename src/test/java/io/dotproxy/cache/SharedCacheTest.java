package io.dotproxy.cache;

import static io.dotproxy.cache.Dns.a;
import static io.dotproxy.cache.Dns.reply;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.cache.Dns.Edns;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.WireFormatException;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Type;

/**
 * One cache for several lanes: threads that store and look up at once, as lanes do, each finding
 * what it stored with its own answer, within the size bound, and the entries counted once.
 */
class SharedCacheTest {
    private static final int LANES = 4;
    private static final int NAMES_PER_LANE = 6_000;

    private static ResponseCache cache(long maxBytes) {
        ResponseCache.Settings settings = new ResponseCache.Settings(true, maxBytes, Duration.ZERO, Duration.ofDays(1),
                Duration.ofHours(1), Duration.ZERO, Duration.ofMillis(1800), 0);
        return new ResponseCache(settings, System::nanoTime, new CacheMetrics(new SimpleMeterRegistry()), LANES);
    }

    private static String address(int lane, int i) {
        return "10." + lane + "." + (i >> 8) + "." + (i & 0xFF);
    }

    /** Stores the answer of {@code lane}'s name {@code i}. */
    private static void store(ResponseCache cache, int lane, int i) throws WireFormatException {
        org.xbill.DNS.Message query = Dns.query("n" + i + ".lane" + lane + ".example.", Type.A, Edns.PLAIN);
        ByteBuf wire = Dns.wire(query);
        Message parsed = Message.parse(wire);
        ByteBuf answer = Dns.wire(reply(query, Rcode.NOERROR,
                a(query.getQuestion().getName().toString(), 300, address(lane, i))));
        cache.store(Question.key(wire, parsed), wire, parsed, answer);
        answer.release();
        wire.release();
    }

    /** Looks up {@code lane}'s name {@code i}: whether it was found, failing if found with another answer. */
    private static boolean find(ResponseCache cache, int lane, int i) throws WireFormatException {
        org.xbill.DNS.Message query = Dns.query("n" + i + ".lane" + lane + ".example.", Type.A, Edns.PLAIN);
        ByteBuf wire = Dns.wire(query);
        try {
            Message parsed = Message.parse(wire);
            long now = cache.now();
            ByteBuf answer = cache.fresh(Question.key(wire, parsed), wire, parsed, now, UnpooledByteBufAllocator.DEFAULT,
                    (key, asked, parsedAgain, alloc) -> { });
            if (answer == null) {
                return false;
            }
            org.xbill.DNS.Message read = Dns.read(answer);
            assertEquals(address(lane, i), read.getSection(org.xbill.DNS.Section.ANSWER).get(0).rdataToString(),
                    "its own answer");
            return true;
        } finally {
            wire.release();
        }
    }

    /**
     * A lane's work, started with the others at once: each of its names stored, then looked up
     * at once, and the same name of the next lane (stored by another thread now) looked up too.
     * Returns how many of its own names it found right after storing them.
     */
    private static int storeAndFind(ResponseCache cache, int lane, int names, int rounds, CyclicBarrier start)
            throws Exception {
        start.await(10, TimeUnit.SECONDS);
        int found = 0;
        for (int round = 0; round < rounds; round++) {
            for (int i = 0; i < names; i++) {
                store(cache, lane, i); // again in each round: the entry is replaced, the table churns
                if (find(cache, lane, i)) {
                    found++;
                }
                find(cache, (lane + 1) % LANES, i);
            }
        }
        return found;
    }

    private static List<Integer> runLanes(ResponseCache cache, int names, int rounds) throws Exception {
        ExecutorService lanes = Executors.newFixedThreadPool(LANES);
        try {
            CyclicBarrier start = new CyclicBarrier(LANES);
            List<Future<Integer>> work = new ArrayList<>();
            for (int lane = 0; lane < LANES; lane++) {
                int id = lane;
                work.add(lanes.submit(() -> storeAndFind(cache, id, names, rounds, start)));
            }
            List<Integer> found = new ArrayList<>();
            for (Future<Integer> lane : work) {
                found.add(lane.get(60, TimeUnit.SECONDS));
            }
            return found;
        } finally {
            lanes.shutdownNow();
        }
    }

    @Test
    void lanesStoringAndFindingAtOnceInOneSegmentEachFindEverythingTheyStored() throws Exception {
        // Under 512 KiB the cache keeps one segment: every lane meets every other on its lock.
        ResponseCache cache = cache(384 << 10);
        int names = 400;

        List<Integer> found = runLanes(cache, names, 20);

        assertEquals(List.of(names * 20, names * 20, names * 20, names * 20), found);
        assertEquals(LANES * names, cache.entries(), "every entry once");
        for (int lane = 0; lane < LANES; lane++) {
            for (int i = 0; i < names; i++) {
                assertTrue(find(cache, lane, i), "lane " + lane + " name " + i + " still there");
            }
        }
    }

    @Test
    void lanesStoringAndFindingAtOnceOverSegmentsEachFindEverythingTheyStored() throws Exception {
        ResponseCache cache = cache(64 << 20);

        List<Integer> found = runLanes(cache, NAMES_PER_LANE, 1);

        assertEquals(List.of(NAMES_PER_LANE, NAMES_PER_LANE, NAMES_PER_LANE, NAMES_PER_LANE), found);
        assertEquals(LANES * NAMES_PER_LANE, cache.entries(), "every entry once, in one of the segments");
    }

    @Test
    void lanesFillingASmallCacheAtOnceStayWithinItsBound() throws Exception {
        long bound = 1 << 20; // four segments of 256 KiB; the names weigh about twice that
        ResponseCache cache = cache(bound);

        runLanes(cache, NAMES_PER_LANE, 1);

        assertTrue(cache.bytes() <= bound, "at most the bound: " + cache.bytes());
        long held = cache.entries();
        assertTrue(held > 0 && held < LANES * NAMES_PER_LANE, "some entries, not all: " + held);
        cache.clear();
        assertEquals(0, cache.entries());
        assertEquals(0, cache.bytes());
    }
}
