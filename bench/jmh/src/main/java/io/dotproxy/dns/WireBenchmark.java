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
    /** www.example.com A with an OPT record (payload 1232, DO), as dig sends it. */
    private static final String QUERY = "1a2b 0120 0001 0000 0000 0001 03777777 076578616d706c65 03636f6d 00 0001 0001"
            + " 00 0029 04d0 00008000 0000";
    /** Its answer: the question, one A record (owner compressed), OPT. */
    private static final String ANSWER = "1a2b 8180 0001 0001 0000 0001 03777777 076578616d706c65 03636f6d 00 0001 0001"
            + " c00c 0001 0001 0000012c 0004 c0000201 00 0029 04d0 00000000 0000";

    private ByteBuf query;
    private ByteBuf answer;
    private ByteBuf bigAnswer;
    private Message parsedQuery;
    private final ByteBuf out = Unpooled.directBuffer(512);

    @Setup
    public void setUp() throws WireFormatException {
        query = Unpooled.directBuffer().writeBytes(HexFormat.of().parseHex(QUERY.replace(" ", "")));
        answer = Unpooled.directBuffer().writeBytes(HexFormat.of().parseHex(ANSWER.replace(" ", "")));
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
