package io.dotproxy.upstream;

import io.dotproxy.dns.Message;
import io.dotproxy.dns.WireFormatException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * One upstream as a member of a group: the upstream itself, its health, and its recent latency.
 * It probes its own upstream with {@code . IN NS} (the query CoreDNS uses for health checks)
 * through the upstream's normal path, so a DoT probe rides a pooled connection when one is open.
 */
public final class Member {
    private final Upstream upstream;
    private final UpstreamHealth health;
    private final LatencyTracker latency = new LatencyTracker();
    private final Duration probeTimeout;

    public Member(Upstream upstream, UpstreamHealth health, Duration probeTimeout) {
        this.upstream = upstream;
        this.health = health;
        this.probeTimeout = probeTimeout;
        health.setProber(this::probe);
    }

    public Upstream upstream() {
        return upstream;
    }

    public UpstreamHealth health() {
        return health;
    }

    LatencyTracker latency() {
        return latency;
    }

    public String name() {
        return upstream.name();
    }

    private void probe(java.util.function.Consumer<Boolean> result) {
        ByteBuf query = Unpooled.buffer(17);
        query.writeShort(ThreadLocalRandom.current().nextInt(1 << 16)).writeShort(0x0100) // RD
                .writeShort(1).writeShort(0).writeShort(0).writeShort(0)
                .writeByte(0).writeShort(2).writeShort(1); // . IN NS
        Message parsed;
        try {
            parsed = Message.parse(query);
        } catch (WireFormatException e) {
            throw new IllegalStateException(e); // a constant message
        }
        upstream.query(query, parsed, System.nanoTime() + probeTimeout.toNanos(), new QueryCallback() {
            @Override
            public void onAnswer(ByteBuf answer) {
                answer.release();
                query.release();
                result.accept(true);
            }

            @Override
            public void onFailure(UpstreamFailure failure) {
                query.release();
                result.accept(false);
            }
        });
    }
}
