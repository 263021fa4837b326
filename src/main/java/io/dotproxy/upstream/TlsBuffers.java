package io.dotproxy.upstream;

import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;

/**
 * The buffer pool of the DoT side: the queries written to upstream connections and everything
 * their TLS handlers allocate.
 *
 * <p>It keeps no per-thread caches. The TLS engine works on {@code java.nio.ByteBuffer} views of
 * pooled buffers, and a freed region keeps its view. In a thread cache a region can wait longer
 * than a young collection keeps an object before it is used again, so its view was promoted and
 * dropped later as old-generation garbage. Without thread caches a freed region goes back to its
 * chunk, whose views are reused newest first. Measured at full load: the old generation grew
 * about 19 KiB a second with thread caches (nearly all of it such views), so a busy proxy's heap
 * crept towards its maximum between full collections, and under 1 KiB a second without, for the
 * same CPU per query. The cost is about one 64 KiB chunk per arena (2 per core) held apart from
 * the shared pool. The listeners keep the shared pool and its caches: on epoll their sockets are
 * read and written by address, without views.
 */
final class TlsBuffers {
    static final ByteBufAllocator ALLOCATOR = newAllocator();

    private TlsBuffers() {}

    static PooledByteBufAllocator newAllocator() {
        return new PooledByteBufAllocator(
                true, // direct buffers, which the OpenSSL engine reads and writes in place
                PooledByteBufAllocator.defaultNumHeapArena(), // the JDK engine, if OpenSSL is missing, wraps into heap buffers
                PooledByteBufAllocator.defaultNumDirectArena(),
                PooledByteBufAllocator.defaultPageSize(),
                PooledByteBufAllocator.defaultMaxOrder(),
                0, // small-buffer thread cache: none
                0, // normal-buffer thread cache: none
                false); // caches for non-Netty threads too: no (moot without caches)
    }
}
