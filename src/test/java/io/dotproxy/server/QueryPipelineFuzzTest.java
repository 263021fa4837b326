package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.dotproxy.cache.LocalAnswers;
import io.dotproxy.dns.Message;
import io.dotproxy.guard.Admission;
import io.dotproxy.net.Transport;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamFailure;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.UnpooledDirectByteBuf;
import io.netty.buffer.UnpooledHeapByteBuf;
import io.netty.util.ResourceLeakDetector;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The whole query pipeline under coverage-guided fuzzing: the fuzzer chooses the client's bytes (one
 * UDP datagram, or a TCP stream cut into 2-octet-length frames), the admission's verdict on each
 * query, and what the upstream does with it (answers with the fuzzer's bytes or fails, at once or
 * after the other queries were handled). On every input:
 * <ul>
 *   <li>no exception escapes {@code handle} or the callbacks, and no stage fails inside (the pipeline
 *       would hide such a fault as an "internal" SERVFAIL or drop; those counters stay at 0);
 *   <li>every query gets exactly one outcome: one answer sent, or abandoned;
 *   <li>every UDP answer fits the client's payload size and the proxy's cap (RFC 6891 §6.2.5);
 *   <li>every answer the proxy built parses with dnsjava. Upstream answers are passed through as
 *       they came (a proxy does not re-encode them), so one sent unchanged is not checked, and one
 *       cut for UDP is checked only when the upstream's own parsed;
 *   <li>the in-flight count is back to 0;
 *   <li>every buffer handed out (client, upstream, and what the pipeline allocated) is released once
 *       the test has released the answers it was sent.
 * </ul>
 *
 * <p>{@code ./mvnw verify} runs this in its own surefire execution, {@code fuzz} (see pom.xml): first
 * as a regression test over the inputs in {@code QueryPipelineFuzzTestInputs/}, then fuzzing for a
 * bounded number of runs. Input layout: octet 0 is the setup (bit 0 TCP, bits 1–2 the cap on
 * queries in flight, bits 3–4 the largest UDP payload); a 2-octet length and the client's octets;
 * then per query a control octet (bits 0–1 verdict, bits 2–3 answer/later answer/fail/later fail,
 * bits 4–7 the failure) and, for an answer, a 2-octet length and the upstream's octets.
 */
class QueryPipelineFuzzTest {
    private static final InetSocketAddress CLIENT = new InetSocketAddress("192.0.2.1", 40000);
    private static final int[] UDP_PAYLOADS = {512, 1232, 1400, 4096};
    private static final Admission.Verdict[] VERDICTS = Admission.Verdict.values();
    private static final UpstreamFailure[] FAILURES = UpstreamFailure.values();

    private static ResourceLeakDetector.Level leakDetection;

    @BeforeAll
    static void paranoidLeakDetection() {
        leakDetection = ResourceLeakDetector.getLevel();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.PARANOID);
    }

    @AfterAll
    static void usualLeakDetection() {
        ResourceLeakDetector.setLevel(leakDetection);
    }

    @FuzzTest
    void everyQueryGetsOneOutcomeAndEveryBufferGoesBack(byte[] input) throws IOException {
        new Run(input).go();
    }

    /** One input: its decoding, the fakes it drives, and the checks. */
    private static final class Run implements Upstream {
        private final Input in;
        private final TrackingAllocator alloc = new TrackingAllocator();
        private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
        private final ServerMetrics metrics = new ServerMetrics(registry);
        private final List<FuzzExchange> exchanges = new ArrayList<>();
        private final List<Runnable> later = new ArrayList<>();
        private final Transport transport;
        private final int maxUdpPayload;
        private final QueryPipeline pipeline;
        private int control;

        Run(byte[] input) {
            in = new Input(input);
            int setup = in.u8();
            transport = (setup & 1) != 0 ? Transport.TCP : Transport.UDP;
            maxUdpPayload = UDP_PAYLOADS[(setup >> 3) & 3];
            Admission admission = (client, via) -> VERDICTS[control & 3];
            pipeline = new QueryPipeline(admission, LocalAnswers.NONE, this, new QueryPipeline.Settings(
                    Duration.ofSeconds(2), maxUdpPayload, (setup >> 1) & 3, (setup & 0x20) == 0), metrics);
        }

        void go() throws IOException {
            byte[] client = in.bytes(in.u16());
            if (transport == Transport.UDP) {
                handle(alloc.directBuffer(client.length).writeBytes(client));
            } else {
                // a TCP read buffer; each frame is a slice of it, as the frame decoder hands them on
                ByteBuf stream = alloc.directBuffer(Math.max(1, client.length)).writeBytes(client);
                while (stream.readableBytes() >= 2) {
                    int length = stream.readUnsignedShort();
                    if (length > stream.readableBytes()) {
                        break; // a partial frame waits for more octets that never come
                    }
                    handle(stream.readRetainedSlice(length));
                }
                stream.release();
            }
            for (Runnable callback : later) {
                callback.run();
            }
            check();
        }

        private void handle(ByteBuf frame) {
            control = in.u8();
            FuzzExchange exchange = new FuzzExchange(transport, alloc);
            exchanges.add(exchange);
            pipeline.handle(frame, exchange);
        }

        /** The fake upstream: honours what every real one guarantees (≥ 12 octets, QR set, ID restored). */
        @Override
        public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
            assertNotNull(parsed);
            FuzzExchange exchange = (FuzzExchange) callback;
            int action = (control >> 2) & 3;
            Runnable outcome;
            if (action <= 1) {
                byte[] bytes = in.bytes(in.u16());
                ByteBuf answer = alloc.directBuffer(Math.max(12, bytes.length)).writeBytes(bytes);
                answer.writeZero(Math.max(0, 12 - bytes.length));
                answer.setShort(0, query.getUnsignedShort(query.readerIndex()));
                answer.setByte(2, answer.getByte(2) | 0x80);
                exchange.upstreamAnswer = answer;
                exchange.upstreamBytes = ByteBufUtil.getBytes(answer);
                outcome = () -> callback.onAnswer(answer);
            } else {
                UpstreamFailure failure = FAILURES[((control >> 4) & 0xf) % FAILURES.length];
                outcome = () -> callback.onFailure(failure);
            }
            if ((action & 1) == 0) {
                outcome.run();
            } else {
                later.add(outcome);
            }
        }

        private void check() throws IOException {
            for (FuzzExchange exchange : exchanges) {
                if ((exchange.sent == null) == (exchange.abandoned == 0) || exchange.abandoned > 1) {
                    fail("one outcome per query, got sent=" + exchange.sent + " abandoned=" + exchange.abandoned);
                }
                if (exchange.sent != null) {
                    byte[] sent = ByteBufUtil.getBytes(exchange.sent);
                    if (exchange.sent != exchange.upstreamAnswer
                            && (exchange.upstreamBytes == null || parses(exchange.upstreamBytes))) {
                        new org.xbill.DNS.Message(sent); // throws when it does not parse
                    }
                    if (transport == Transport.UDP && exchange.parsed() != null) {
                        int limit = Math.min(exchange.parsed().udpPayloadLimit(), maxUdpPayload);
                        if (sent.length > limit) {
                            fail("a UDP answer of " + sent.length + " octets for a limit of " + limit);
                        }
                    }
                    exchange.sent.release();
                }
            }
            assertEquals(0, pipeline.inFlight(), "in flight");
            assertEquals(0, count("dotproxy.server.errors", "internal"), "a stage failed inside");
            assertEquals(0, count("dotproxy.server.dropped", "internal"), "a stage failed inside");
            for (ByteBuf buffer : alloc.handedOut) {
                assertEquals(0, buffer.refCnt(), "a buffer was not released");
            }
        }

        private double count(String name, String result) {
            return registry.find(name).tag("result", result).functionCounters().stream()
                    .mapToDouble(FunctionCounter::count).sum();
        }

        /** Whether dnsjava reads the message. */
        private static boolean parses(byte[] wire) {
            try {
                new org.xbill.DNS.Message(wire);
                return true;
            } catch (IOException | RuntimeException e) {
                return false;
            }
        }

        @Override
        public String name() {
            return "fuzzed";
        }

        @Override
        public void close() {}
    }

    /** The way back to the client, recorded; it may be completed only once. */
    private static final class FuzzExchange extends Exchange {
        private final Transport transport;
        private final ByteBufAllocator alloc;
        ByteBuf sent;
        int abandoned;
        ByteBuf upstreamAnswer;
        byte[] upstreamBytes;

        FuzzExchange(Transport transport, ByteBufAllocator alloc) {
            this.transport = transport;
            this.alloc = alloc;
        }

        @Override
        Transport transport() {
            return transport;
        }

        @Override
        InetSocketAddress client() {
            return CLIENT;
        }

        @Override
        ByteBufAllocator alloc() {
            return alloc;
        }

        @Override
        void send(ByteBuf answer) {
            if (sent != null) {
                fail("a second answer to one query");
            }
            sent = answer;
        }

        @Override
        void abandon() {
            abandoned++;
        }
    }

    /** Unpooled buffers, each remembered so that the test can tell whether it went back. */
    private static final class TrackingAllocator extends AbstractByteBufAllocator {
        final List<ByteBuf> handedOut = new ArrayList<>();

        TrackingAllocator() {
            super(true);
        }

        @Override
        protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
            ByteBuf buffer = new UnpooledHeapByteBuf(this, initialCapacity, maxCapacity);
            handedOut.add(buffer);
            return buffer;
        }

        @Override
        protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
            ByteBuf buffer = new UnpooledDirectByteBuf(this, initialCapacity, maxCapacity);
            handedOut.add(buffer);
            return buffer;
        }

        @Override
        public boolean isDirectBufferPooled() {
            return false;
        }
    }

    /** Reads the fuzzer's octets in order; past the end, every read is 0 or empty. */
    private static final class Input {
        private final byte[] data;
        private int at;

        Input(byte[] data) {
            this.data = data;
        }

        int u8() {
            return at < data.length ? data[at++] & 0xff : 0;
        }

        int u16() {
            return u8() << 8 | u8();
        }

        byte[] bytes(int length) {
            int n = Math.min(length, data.length - at);
            byte[] out = java.util.Arrays.copyOfRange(data, at, at + n);
            at += n;
            return out;
        }
    }
}
