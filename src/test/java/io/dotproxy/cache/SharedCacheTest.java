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
    private static final int NAMES_PER_LANE = 3_000;

    private static ResponseCache cache(long maxBytes) {
        ResponseCache.Settings settings = new ResponseCache.Settings(true, maxBytes, Duration.ZERO, Duration.ofDays(1),
                Duration.ofHours(1), Duration.ZERO, Duration.ofMillis(1800), 0);
        return new ResponseCache(settings, System::nanoTime, new CacheMetrics(new SimpleMeterRegistry()), LANES);
    }

    /** A lane's work: store an answer for each of its names, then look each up and check the address. */
    private static int storeAndFind(ResponseCache cache, int lane) throws WireFormatException {
        int found = 0;
        for (int i = 0; i < NAMES_PER_LANE; i++) {
            org.xbill.DNS.Message query = Dns.query("n" + i + ".lane" + lane + ".example.", Type.A, Edns.PLAIN);
            ByteBuf wire = Dns.wire(query);
            Message parsed = Message.parse(wire);
            ByteBuf answer = Dns.wire(reply(query, Rcode.NOERROR,
                    a(query.getQuestion().getName().toString(), 300, "10." + lane + "." + (i >> 8) + "." + (i & 0xFF))));
            cache.store(Question.key(wire, parsed), wire, parsed, answer);
            answer.release();
            wire.release();
        }
        for (int i = 0; i < NAMES_PER_LANE; i++) {
            org.xbill.DNS.Message query = Dns.query("n" + i + ".lane" + lane + ".example.", Type.A, Edns.PLAIN);
            ByteBuf wire = Dns.wire(query);
            Message parsed = Message.parse(wire);
            long now = cache.now();
            CachedAnswer entry = cache.find(Question.key(wire, parsed), wire, parsed, now);
            if (entry != null) {
                ByteBuf hit = entry.fresh(UnpooledByteBufAllocator.DEFAULT, wire, parsed, now);
                org.xbill.DNS.Message read = Dns.read(hit);
                assertEquals("10." + lane + "." + (i >> 8) + "." + (i & 0xFF),
                        read.getSection(org.xbill.DNS.Section.ANSWER).get(0).rdataToString(), "its own answer");
                found++;
            }
            wire.release();
        }
        return found;
    }

    private static List<Integer> runLanes(ResponseCache cache) throws Exception {
        ExecutorService lanes = Executors.newFixedThreadPool(LANES);
        try {
            List<Future<Integer>> work = new ArrayList<>();
            for (int lane = 0; lane < LANES; lane++) {
                int id = lane;
                work.add(lanes.submit(() -> storeAndFind(cache, id)));
            }
            List<Integer> found = new ArrayList<>();
            for (Future<Integer> lane : work) {
                found.add(lane.get(30, TimeUnit.SECONDS));
            }
            return found;
        } finally {
            lanes.shutdownNow();
        }
    }

    @Test
    void lanesStoringAndFindingAtOnceEachFindEverythingTheyStored() throws Exception {
        ResponseCache cache = cache(64 << 20);

        List<Integer> found = runLanes(cache);

        assertEquals(List.of(NAMES_PER_LANE, NAMES_PER_LANE, NAMES_PER_LANE, NAMES_PER_LANE), found);
        assertEquals(LANES * NAMES_PER_LANE, cache.entries(), "every entry once, in one of the segments");
    }

    @Test
    void lanesFillingASmallCacheAtOnceStayWithinItsBound() throws Exception {
        long bound = 256 << 10;
        ResponseCache cache = cache(bound);

        runLanes(cache);

        assertTrue(cache.bytes() <= bound, "at most the bound: " + cache.bytes());
        long held = cache.entries();
        assertTrue(held > 0 && held < LANES * NAMES_PER_LANE, "some entries, not all: " + held);
        cache.clear();
        assertEquals(0, cache.entries());
        assertEquals(0, cache.bytes());
    }
}
