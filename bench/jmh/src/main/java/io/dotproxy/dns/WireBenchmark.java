package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
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

/** The wire view on every query's path: parse, question match, padding, truncation. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class WireBenchmark {
    private ByteBuf query;
    private ByteBuf answer;
    private ByteBuf bigAnswer;
    private Message parsedQuery;
    private final ByteBuf out = Unpooled.directBuffer(512);

    @Setup
    public void setUp() throws WireFormatException {
        query = Packets.direct(Packets.QUERY);
        answer = Packets.direct(Packets.ANSWER);
        parsedQuery = Message.parse(query);
        bigAnswer = Unpooled.directBuffer().writeBytes(answer, 0, answer.readableBytes() - 11);
        bigAnswer.setShort(6, 101);
        for (int i = 0; i < 100; i++) { // 100 A records: 1,6xx octets, more than a UDP client takes
            bigAnswer.writeBytes(HexFormat.of().parseHex("c00c00010001000001 2c0004c0000201".replace(" ", "")));
        }
        bigAnswer.writeBytes(answer, answer.readableBytes() - 11, 11);
    }

    @Benchmark
    public Message parseQuery() throws WireFormatException {
        return Message.parse(query);
    }

    @Benchmark
    public boolean matchAnswerToQuery() {
        return Message.sameQuestion(query, 0, query.writerIndex(), answer, 0, answer.writerIndex());
    }

    @Benchmark
    public int padQuery() {
        out.clear();
        Padding.writePadded(out, query, parsedQuery, Padding.QUERY_BLOCK);
        return out.writerIndex();
    }

    @Benchmark
    public int truncateForUdp() throws WireFormatException {
        ByteBuf cut = Truncation.fit(ByteBufAllocator.DEFAULT, bigAnswer.retainedDuplicate(), 512);
        int length = cut.readableBytes();
        cut.release();
        return length;
    }
}
