package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PoolArenaMetric;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Rcode;

/** The DoT side's buffer pool: no per-thread caches, and the upstream connections use it. */
class TlsBuffersTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued GOOD = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of());

    @Test
    void aReleasedBufferGoesBackToItsArenaAtOnceEvenOnAnEventLoopThread() throws Exception {
        // Netty's threads (event loops) are the ones that get thread caches, and a pool with them
        // keeps a released buffer there: the contrast shows the test can tell the two apart.
        // Fresh pools of each kind, since the shared ones may serve another test's proxy meanwhile.
        assertEquals(0, activeAfterAllocateAndRelease(TlsBuffers.newAllocator()), "TLS pool");
        assertEquals(1, activeAfterAllocateAndRelease(new PooledByteBufAllocator(true)), "pool with thread caches");
    }

    @Test
    void upstreamConnectionsAllocateFromIt() throws Exception {
        try (FakeUpstream upstream = FakeUpstream.start(GOOD, FakeUpstream.answering());
             ProxyHarness proxy = ProxyHarness.builder(CA).upstream(upstream).start()) {
            int queries = 5;
            long before = allocations(TlsBuffers.ALLOCATOR);
            for (int i = 0; i < queries; i++) {
                assertEquals(Rcode.NOERROR, DnsClient.udp(proxy.port(), DnsClient.query("pool" + i + ".example.")).getRcode());
            }
            long after = allocations(TlsBuffers.ALLOCATOR);
            // Per query at least the query as written (length prefix, padding) and a TLS record each way.
            assertTrue(after - before >= 3L * queries, "allocations from the TLS pool: " + (after - before));
        }
    }

    /** Allocates and releases one small direct buffer on a Netty thread; returns what the arenas still count. */
    private static long activeAfterAllocateAndRelease(ByteBufAllocator allocator) throws Exception {
        CompletableFuture<Long> active = new CompletableFuture<>();
        Thread thread = new DefaultThreadFactory("tls-buffers-test").newThread(() -> {
            long before = active(allocator);
            ByteBuf buffer = allocator.directBuffer(512);
            buffer.writeLong(1);
            buffer.release();
            active.complete(active(allocator) - before);
        });
        thread.start();
        return active.get(10, TimeUnit.SECONDS);
    }

    private static long active(ByteBufAllocator allocator) {
        return directArenas(allocator).stream().mapToLong(PoolArenaMetric::numActiveAllocations).sum();
    }

    private static long allocations(ByteBufAllocator allocator) {
        return directArenas(allocator).stream().mapToLong(PoolArenaMetric::numAllocations).sum();
    }

    private static List<PoolArenaMetric> directArenas(ByteBufAllocator allocator) {
        return ((PooledByteBufAllocator) allocator).metric().directArenas();
    }
}
