package io.dotproxy.upstream;

import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;

/**
 * The buffer pool of the DoT side: the queries written to upstream connections and everything
 * their TLS handlers allocate.
 *
 * <p>It keeps no per-thread caches. The TLS engine works on {@code java.nio.ByteBuffer} views of
 * pooled buffers, and a pooled region keeps its view while it sits in a thread cache; the region
 * cycles through the cache for longer than a young collection keeps an object, so its view is
 * promoted, and dropped later as old-generation garbage. Measured at full load: the old
 * generation grew about 20 KiB a second with thread caches (nearly all of it such views), so a
 * busy proxy's heap crept towards its maximum between full collections, and under 1 KiB a
 * second without, for the same CPU per query. The listeners keep the shared pool and its
 * caches: their sockets are read and written by address, without views.
 */
final class TlsBuffers {
    static final ByteBufAllocator ALLOCATOR = new PooledByteBufAllocator(
            true, // direct buffers, which the TLS engine reads and writes in place
            0, // no heap arenas: nothing on this side asks for heap buffers
            PooledByteBufAllocator.defaultNumDirectArena(),
            PooledByteBufAllocator.defaultPageSize(),
            PooledByteBufAllocator.defaultMaxOrder(),
            0, // small-buffer thread cache: none
            0, // normal-buffer thread cache: none
            false); // caches for non-Netty threads too: no (moot without caches)

    private TlsBuffers() {}
}
