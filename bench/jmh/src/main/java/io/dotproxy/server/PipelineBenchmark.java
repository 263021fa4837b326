package io.dotproxy.server;

import io.dotproxy.dns.Message;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.Upstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The proxy's own per-query work without any I/O: wire checks, the exact-size copy, the
 * exchange, metrics, the way back with UDP truncation checks. The upstream answers at once.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class PipelineBenchmark {
    private static final String QUERY = "1a2b 0120 0001 0000 0000 0001 03777777 076578616d706c65 03636f6d 00 0001 0001"
            + " 00 0029 04d0 00008000 0000";
    private static final String ANSWER = "1a2b 8180 0001 0001 0000 0001 03777777 076578616d706c65 03636f6d 00 0001 0001"
            + " c00c 0001 0001 0000012c 0004 c0000201 00 0029 04d0 00000000 0000";

    private ByteBuf query;
    private ByteBuf answer;
    private QueryPipeline pipeline;
    private final Sink sink = new Sink();

    /** An exchange that drops what it is sent, as a UDP client over loopback would receive it. */
    static final class Sink extends Exchange {
        int answered;

        @Override
        Transport transport() {
            return Transport.UDP;
        }

        @Override
        ByteBufAllocator alloc() {
            return ByteBufAllocator.DEFAULT;
        }

        @Override
        void send(ByteBuf answer) {
            answered += answer.readableBytes();
            answer.release();
        }

        @Override
        void abandon() {}
    }

    @Setup
    public void setUp() {
        query = Unpooled.directBuffer().writeBytes(HexFormat.of().parseHex(QUERY.replace(" ", "")));
        answer = Unpooled.directBuffer().writeBytes(HexFormat.of().parseHex(ANSWER.replace(" ", "")));
        Upstream immediate = new Upstream() {
            @Override
            public void query(ByteBuf q, Message parsed, long deadlineNanos, QueryCallback callback) {
                callback.onAnswer(answer.retainedDuplicate());
            }

            @Override
            public String name() {
                return "immediate";
            }

            @Override
            public void close() {}
        };
        pipeline = new QueryPipeline(immediate, Duration.ofSeconds(2), 1232, new ServerMetrics(new SimpleMeterRegistry()));
    }

    @Benchmark
    public int oneQuery() {
        // A fresh exchange per query, as the UDP listener makes one per datagram.
        Sink exchange = new Sink();
        pipeline.handle(query.retainedDuplicate(), exchange);
        return exchange.answered;
    }
}
