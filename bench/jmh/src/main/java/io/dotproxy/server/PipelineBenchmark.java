package io.dotproxy.server;

import io.dotproxy.cache.LocalAnswers;
import io.dotproxy.dns.Message;
import io.dotproxy.dns.Packets;
import io.dotproxy.guard.Admission;
import io.dotproxy.net.Transport;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.Upstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import java.net.InetSocketAddress;
import java.time.Duration;
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
 * The proxy's own per-query work without any I/O: every stage of the pipeline (admission and
 * local answers as pass-throughs), the exact-size copy, the exchange, metrics, the way back with
 * UDP truncation checks. The upstream answers at once.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class PipelineBenchmark {
    private ByteBuf query;
    private ByteBuf answer;
    private QueryPipeline pipeline;
    private static final InetSocketAddress CLIENT = new InetSocketAddress("127.0.0.1", 40000);

    /** An exchange that drops what it is sent, as a UDP client over loopback would receive it. */
    static final class Sink extends Exchange {
        int answered;

        @Override
        Transport transport() {
            return Transport.UDP;
        }

        @Override
        InetSocketAddress client() {
            return CLIENT;
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
        query = Packets.direct(Packets.QUERY);
        answer = Packets.direct(Packets.ANSWER);
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
        pipeline = new QueryPipeline(Admission.ADMIT_ALL, LocalAnswers.NONE, immediate,
                new QueryPipeline.Settings(Duration.ofSeconds(2), 1232, 10_000, true), new ServerMetrics(new SimpleMeterRegistry()));
    }

    @Benchmark
    public int oneQuery() {
        // A fresh exchange per query, as the UDP listener makes one per datagram.
        Sink exchange = new Sink();
        pipeline.handle(query.retainedDuplicate(), exchange);
        return exchange.answered;
    }
}
