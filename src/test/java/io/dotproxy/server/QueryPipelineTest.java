package io.dotproxy.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.cache.LocalAnswers;
import io.dotproxy.dns.ExtendedError;
import io.dotproxy.dns.Message;
import io.dotproxy.guard.Admission;
import io.dotproxy.net.Transport;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamFailure;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.ClientSubnetOption;
import org.xbill.DNS.CookieOption;
import org.xbill.DNS.DClass;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.ExtendedErrorCodeOption;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Name;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.TXTRecord;

/**
 * Each stage of the pipeline on its own: it answers, drops with a counted reason, or passes the
 * query on; and whatever the path, the query's buffers are released and the in-flight count
 * returns to zero. dnsjava builds the queries and reads the answers.
 */
class QueryPipelineTest {
    private static final InetSocketAddress CLIENT = new InetSocketAddress("127.0.0.1", 40000);
    private static final Duration TIMEOUT = Duration.ofSeconds(2);

    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final ServerMetrics metrics = new ServerMetrics(registry);
    private final RecordingUpstream upstream = new RecordingUpstream();
    private final RecordingLocalAnswers local = new RecordingLocalAnswers();

    private QueryPipeline pipeline(Admission admission) {
        return pipeline(admission, true);
    }

    private QueryPipeline pipeline(Admission admission, boolean stripClientSubnet) {
        return new QueryPipeline(admission, local, upstream,
                new QueryPipeline.Settings(TIMEOUT, 1232, 2, stripClientSubnet), metrics);
    }

    private double count(String name, String... tags) {
        return registry.find(name).tags(tags).functionCounters().stream().mapToDouble(FunctionCounter::count).sum();
    }

    /** Hands {@code received} to the pipeline as a listener would, and remembers it for the checks. */
    private static TestExchange handle(QueryPipeline pipeline, ByteBuf received, TestExchange exchange) {
        exchange.received = received;
        pipeline.handle(received, exchange);
        return exchange;
    }

    private static ByteBuf wire(org.xbill.DNS.Message message) {
        return Unpooled.wrappedBuffer(message.toWire());
    }

    private static org.xbill.DNS.Message read(ByteBuf answer) throws IOException {
        return new org.xbill.DNS.Message(ByteBufUtil.getBytes(answer));
    }

    @Test
    void admittedQueryWithNoLocalAnswerIsForwardedAndTheUpstreamAnswerGoesBack() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        TestExchange exchange = new TestExchange(Transport.UDP);
        org.xbill.DNS.Message query = DnsClient.query("forwarded.example.");
        ByteBuf received = wire(query);
        long before = System.nanoTime();

        handle(pipeline, received, exchange);

        assertEquals(0, received.refCnt(), "the receive buffer goes back at once");
        assertEquals(1, local.asked, "the local answers were asked first");
        assertEquals(1, upstream.calls.size(), "then it was forwarded");
        assertEquals(1, pipeline.inFlight(), "in flight until the upstream calls back");
        Forwarded forwarded = upstream.calls.get(0);
        assertTrue(forwarded.deadlineNanos - before >= TIMEOUT.toNanos(), "the query's whole deadline");

        forwarded.callback.onAnswer(wire(answerTo(query, "192.0.2.7")));

        org.xbill.DNS.Message answer = read(exchange.sent);
        assertEquals(query.getHeader().getID(), answer.getHeader().getID());
        assertEquals("192.0.2.7", ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress());
        assertEquals(1, count("dotproxy.server.responses", "proto", "udp", "rcode", "NOERROR"));
        assertCompleted(pipeline, exchange);
        assertEquals(0, forwarded.query.refCnt(), "the query was released after the answer");
    }

    @Test
    void localAnswerIsSentWithoutAskingUpstreamAndFittedToTheUdpClient() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        org.xbill.DNS.Message query = DnsClient.query("local.example.");
        local.answer = bigAnswerTo(query); // larger than the 512 octets of a client without EDNS
        ByteBuf tooLong = local.answer;
        TestExchange udp = new TestExchange(Transport.UDP);

        handle(pipeline, wire(query), udp);

        assertEquals(0, tooLong.refCnt(), "the answer that did not fit was released");
        assertTrue(upstream.calls.isEmpty(), "not forwarded");
        org.xbill.DNS.Message answer = read(udp.sent);
        assertTrue(answer.getHeader().getFlag(Flags.TC), "truncated for UDP");
        assertEquals(1, count("dotproxy.server.truncated"));
        assertCompleted(pipeline, udp);

        local.answer = bigAnswerTo(query);
        TestExchange tcp = new TestExchange(Transport.TCP);
        handle(pipeline, wire(query), tcp);
        assertFalse(read(tcp.sent).getHeader().getFlag(Flags.TC), "whole over TCP");
        assertTrue(upstream.calls.isEmpty());
        assertCompleted(pipeline, tcp);
    }

    @Test
    void aQueryAnsweredLocallyIsNeverCopied() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        org.xbill.DNS.Message query = DnsClient.query("hit.example.");
        local.answer = wire(answerTo(query, "192.0.2.8"));
        ByteBuf received = wire(query);

        TestExchange exchange = handle(pipeline, received, new TestExchange(Transport.UDP));

        assertSame(received, local.lastQuery, "the local answers read the buffer as received");
        assertEquals(query.getHeader().getID(), read(exchange.sent).getHeader().getID());
        assertCompleted(pipeline, exchange);
    }

    @Test
    void aForwardedQueryLeavesItsReceiveBufferForAnExactCopyWhateverItsReaderIndex() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        org.xbill.DNS.Message query = ednsQuery("framed.example.", false);
        byte[] sent = query.toWire();
        // As the TCP frame decoder hands a frame on: its 2-octet length prefix skipped, not cut.
        ByteBuf frame = Unpooled.buffer(2 + sent.length).writeShort(sent.length).writeBytes(sent);
        frame.skipBytes(2);

        TestExchange exchange = handle(pipeline, frame, new TestExchange(Transport.TCP));

        assertEquals(0, frame.refCnt(), "the frame went back once the query was copied");
        Forwarded forwarded = upstream.calls.get(0);
        assertEquals(HexFormat.of().formatHex(sent), ByteBufUtil.hexDump(forwarded.query));
        assertEquals(sent.length, forwarded.query.capacity(), "an exact-size copy");
        Message view = forwarded.parsed;
        assertEquals(forwarded.query.readerIndex(), view.start(), "the view is of the copy");
        assertEquals(query.getQuestion().getName(), new org.xbill.DNS.Message(ByteBufUtil.getBytes(forwarded.query,
                view.start(), view.length())).getQuestion().getName());
        assertEquals(sent.length - (view.optEnd() - view.optStart()), view.optStart(), "the OPT record moved along");
        assertEquals(1232, view.udpPayloadLimit());

        forwarded.callback.onAnswer(wire(answerTo(query, "192.0.2.10")));
        assertEquals(query.getHeader().getID(), read(exchange.sent).getHeader().getID());
        assertCompleted(pipeline, exchange);
        assertEquals(0, forwarded.query.refCnt(), "the copy was released after the answer");
    }

    @Test
    void anAnswerTooLongForUdpThatCannotBeParsedToCutIsServfail() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        org.xbill.DNS.Message query = DnsClient.query("broken.example.");
        ByteBuf garbage = Unpooled.buffer(600);
        garbage.writeShort(query.getHeader().getID()).writeShort(0x8180).writeShort(1).writeShort(0).writeShort(0)
                .writeShort(0).writeZero(588); // one question, then octets no count accounts for
        garbage.setByte(12, 63);
        local.answer = garbage;
        TestExchange exchange = handle(pipeline, wire(query), new TestExchange(Transport.UDP));

        assertEquals(Rcode.SERVFAIL, read(exchange.sent).getRcode());
        assertEquals(0, garbage.refCnt());
        assertEquals(1, count("dotproxy.server.errors", "proto", "udp", "result", "untruncatable"));
        assertCompleted(pipeline, exchange);
    }

    @Test
    void aFaultInsideAStageStillAnswersAndReleases() throws IOException {
        QueryPipeline pipeline = new QueryPipeline(Admission.ADMIT_ALL, new LocalAnswers() {
            @Override
            public ByteBuf answer(ByteBuf query, Message parsed, ByteBufAllocator alloc) {
                local.lastQuery = query;
                throw new IllegalStateException("a bug in a stage");
            }

        }, upstream, new QueryPipeline.Settings(TIMEOUT, 1232, 2, true), metrics);
        TestExchange exchange = handle(pipeline, wire(DnsClient.query("bug.example.")), new TestExchange(Transport.TCP));

        assertEquals(Rcode.SERVFAIL, read(exchange.sent).getRcode());
        assertEquals(1, count("dotproxy.server.errors", "proto", "tcp", "result", "internal"));
        assertTrue(upstream.calls.isEmpty());
        assertCompleted(pipeline, exchange);
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void droppedByAdmissionGetsNoAnswerAndIsCountedBeforeAnythingElse(Transport transport) {
        QueryPipeline pipeline = pipeline((client, via) -> Admission.Verdict.DROP);
        TestExchange exchange = new TestExchange(transport);

        handle(pipeline, wire(DnsClient.query("dropped.example.")), exchange);

        assertTrue(exchange.abandoned);
        assertNull(exchange.sent);
        assertEquals(0, local.asked);
        assertTrue(upstream.calls.isEmpty());
        assertEquals(1, count("dotproxy.server.dropped", "proto", transport.tag(), "result", "not_admitted"));
        assertCompleted(pipeline, exchange);
    }

    @Test
    void admissionIsToldWhoAsksAndOverWhichTransport() {
        List<String> asked = new ArrayList<>();
        QueryPipeline pipeline = pipeline((client, via) -> {
            asked.add(client + " " + via);
            return Admission.Verdict.ADMIT;
        });
        pipeline.handle(wire(DnsClient.query("who.example.")), new TestExchange(Transport.TCP));
        assertEquals(List.of(CLIENT + " TCP"), asked);
    }

    @Test
    void refusedByAdmissionGetsRefusedEchoingTheQuestionAndIsCounted() throws IOException {
        QueryPipeline pipeline = pipeline((client, via) -> Admission.Verdict.REFUSE);
        TestExchange exchange = new TestExchange(Transport.UDP);
        org.xbill.DNS.Message query = DnsClient.query("refused.example.");

        handle(pipeline, wire(query), exchange);

        org.xbill.DNS.Message answer = read(exchange.sent);
        assertEquals(Rcode.REFUSED, answer.getRcode());
        assertEquals(query.getQuestion(), answer.getQuestion());
        assertEquals(0, local.asked);
        assertTrue(upstream.calls.isEmpty());
        assertEquals(1, count("dotproxy.server.errors", "proto", "udp", "result", "refused"));
        assertCompleted(pipeline, exchange);
    }

    @Test
    void slippedByAdmissionGetsAnEmptyTruncatedAnswerSoARealClientRetriesOverTcp() throws IOException {
        QueryPipeline pipeline = pipeline((client, via) -> Admission.Verdict.SLIP);
        org.xbill.DNS.Message query = DnsClient.query("slipped.example.", org.xbill.DNS.Type.A, 1232);
        TestExchange exchange = handle(pipeline, wire(query), new TestExchange(Transport.UDP));

        org.xbill.DNS.Message answer = read(exchange.sent);
        assertTrue(answer.getHeader().getFlag(Flags.TC));
        assertEquals(Rcode.NOERROR, answer.getRcode());
        assertEquals(query.getQuestion(), answer.getQuestion());
        assertEquals(0, answer.getSection(Section.ANSWER).size());
        assertTrue(exchange.sent.readableBytes() <= wire(query).readableBytes(), "no more octets than were sent");
        assertEquals(0, local.asked);
        assertTrue(upstream.calls.isEmpty());
        assertEquals(1, count("dotproxy.server.slipped", "proto", "udp"));
        assertCompleted(pipeline, exchange);
    }

    @Test
    void aRefusedClientsMalformedQueryStillGetsFormerrFromTheWireChecks() throws IOException {
        QueryPipeline pipeline = pipeline((client, via) -> Admission.Verdict.REFUSE);
        TestExchange exchange = new TestExchange(Transport.UDP);

        handle(pipeline, Unpooled.wrappedBuffer(HexFormat.of().parseHex("123401000001000000000000076578616d")), exchange);

        assertEquals(Rcode.FORMERR, read(exchange.sent).getRcode());
        assertEquals(0, count("dotproxy.server.errors", "result", "refused"));
        assertEquals(1, count("dotproxy.server.errors", "result", "malformed"));
        assertCompleted(pipeline, exchange);
    }

    @Test
    void packetsThatAreNoQueryAreDroppedBeforeAdmissionIsAsked() {
        List<InetSocketAddress> asked = new ArrayList<>();
        QueryPipeline pipeline = pipeline((client, via) -> {
            asked.add(client);
            return Admission.Verdict.ADMIT;
        });
        TestExchange shortOne = new TestExchange(Transport.UDP);
        handle(pipeline, Unpooled.wrappedBuffer(new byte[] {0x12, 0x34, 0x01}), shortOne);
        org.xbill.DNS.Message response = DnsClient.query("response.example.");
        response.getHeader().setFlag(Flags.QR);
        TestExchange responseOne = new TestExchange(Transport.UDP);
        handle(pipeline, wire(response), responseOne);

        assertTrue(asked.isEmpty());
        assertEquals(1, count("dotproxy.server.dropped", "result", "short"));
        assertEquals(1, count("dotproxy.server.dropped", "result", "response"));
        assertCompleted(pipeline, shortOne);
        assertCompleted(pipeline, responseOne);
    }

    @Test
    void wireChecksAnswerWhatCannotBeForwardedAndPassTheRestOn() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        TestExchange notify = new TestExchange(Transport.TCP);
        org.xbill.DNS.Message query = DnsClient.query("notify.example.");
        query.getHeader().setOpcode(org.xbill.DNS.Opcode.NOTIFY);

        handle(pipeline, wire(query), notify);

        assertEquals(Rcode.NOTIMP, read(notify.sent).getRcode());
        assertEquals(1, count("dotproxy.server.errors", "proto", "tcp", "result", "opcode"));
        assertEquals(0, local.asked, "nothing after the wire checks ran");
        assertTrue(upstream.calls.isEmpty());
        assertCompleted(pipeline, notify);
    }

    @Test
    void upstreamFailureIsAnsweredServfailAndCounted() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        TestExchange exchange = new TestExchange(Transport.UDP);

        handle(pipeline, wire(DnsClient.query("failing.example.")), exchange);
        upstream.calls.get(0).callback.onFailure(UpstreamFailure.TIMEOUT);

        assertEquals(Rcode.SERVFAIL, read(exchange.sent).getRcode());
        assertEquals(1, count("dotproxy.server.errors", "proto", "udp", "result", "upstream"));
        assertCompleted(pipeline, exchange);
    }

    @ParameterizedTest
    @CsvSource({
        "TIMEOUT,     22", // No Reachable Authority
        "CONNECT,     22",
        "UNAVAILABLE, 22",
        "TLS,         23", // Network Error
        "CLOSED,      23",
        "OVERLOADED,  0",  // Other: our own limit, said in the text
    })
    void upstreamFailureCarriesAnExtendedDnsErrorForAnEdnsClientAndIsCountedByCode(UpstreamFailure failure, int code)
            throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        TestExchange edns = new TestExchange(Transport.UDP);
        handle(pipeline, wire(DnsClient.query("failing.example.", org.xbill.DNS.Type.A, 1232)), edns);
        upstream.calls.get(0).callback.onFailure(failure);

        org.xbill.DNS.Message answer = read(edns.sent);
        assertEquals(Rcode.SERVFAIL, answer.getRcode());
        ExtendedErrorCodeOption ede = (ExtendedErrorCodeOption) answer.getOPT()
                .getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).get(0);
        assertEquals(code, ede.getErrorCode());
        assertEquals(failure.description(), ede.getText());
        String tag = ExtendedError.values()[code].tag();
        assertEquals(1, count("dotproxy.server.extended.errors", "result", tag));

        TestExchange plain = new TestExchange(Transport.UDP);
        handle(pipeline, wire(DnsClient.query("failing.example.")), plain);
        upstream.calls.get(1).callback.onFailure(failure);
        assertNull(read(plain.sent).getOPT(), "no EDNS in the query, none in the answer");
        assertEquals(2, count("dotproxy.server.extended.errors", "result", tag), "counted by its reason either way");
    }

    @Test
    void refusalCarriesProhibitedForAnEdnsClient() throws IOException {
        QueryPipeline pipeline = pipeline((client, via) -> Admission.Verdict.REFUSE);
        TestExchange exchange = new TestExchange(Transport.TCP);
        handle(pipeline, wire(DnsClient.query("refused.example.", org.xbill.DNS.Type.A, 1232)), exchange);
        org.xbill.DNS.Message answer = read(exchange.sent);
        assertEquals(Rcode.REFUSED, answer.getRcode());
        assertEquals(18, ((ExtendedErrorCodeOption) answer.getOPT().getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).get(0))
                .getErrorCode());
        assertEquals(1, count("dotproxy.server.extended.errors", "result", "prohibited"));
    }

    @Test
    void beyondTheCapOnQueriesInFlightAQueryGetsServfailAtOnceButALocalAnswerStillGoesOut() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL); // a cap of 2
        handle(pipeline, wire(DnsClient.query("one.example.")), new TestExchange(Transport.UDP));
        handle(pipeline, wire(DnsClient.query("two.example.")), new TestExchange(Transport.UDP));
        TestExchange third = handle(pipeline, wire(DnsClient.query("three.example.", org.xbill.DNS.Type.A, 1232)),
                new TestExchange(Transport.UDP));

        org.xbill.DNS.Message busy = read(third.sent);
        assertEquals(Rcode.SERVFAIL, busy.getRcode());
        assertEquals(0, ((ExtendedErrorCodeOption) busy.getOPT().getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).get(0))
                .getErrorCode());
        assertEquals(2, upstream.calls.size(), "not forwarded, not queued");
        assertEquals(1, count("dotproxy.server.errors", "proto", "udp", "result", "busy"));

        org.xbill.DNS.Message query = DnsClient.query("local.example.");
        local.answer = wire(answerTo(query, "192.0.2.9"));
        TestExchange local = handle(pipeline, wire(query), new TestExchange(Transport.UDP));
        assertEquals(Rcode.NOERROR, read(local.sent).getRcode(), "answering locally adds no upstream load");

        upstream.calls.get(0).callback.onFailure(UpstreamFailure.TIMEOUT);
        TestExchange fourth = handle(pipeline, wire(DnsClient.query("four.example.")), new TestExchange(Transport.UDP));
        assertNull(fourth.sent, "room again: forwarded");
        assertEquals(3, upstream.calls.size());
    }

    @Test
    void inFlightIsAGaugeOverEveryListener() {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        pipeline.handle(wire(DnsClient.query("one.example.")), new TestExchange(Transport.UDP));
        pipeline.handle(wire(DnsClient.query("two.example.")), new TestExchange(Transport.TCP));
        assertEquals(2.0, registry.find("dotproxy.server.in.flight").gauge().value());
        upstream.calls.get(0).callback.onFailure(UpstreamFailure.TIMEOUT);
        assertEquals(1.0, registry.find("dotproxy.server.in.flight").gauge().value());
    }

    private static final EDNSOption COOKIE = new CookieOption(new byte[] {1, 2, 3, 4, 5, 6, 7, 8});

    /** A query with EDNS and a cookie, and a client subnet when {@code subnet} is set. */
    private static org.xbill.DNS.Message ednsQuery(String name, boolean subnet) throws IOException {
        org.xbill.DNS.Message query = DnsClient.query(name, org.xbill.DNS.Type.A, 0);
        List<EDNSOption> options = subnet
                ? List.of(COOKIE, new ClientSubnetOption(24, java.net.InetAddress.getByName("10.244.7.0")))
                : List.of(COOKIE);
        query.addRecord(new OPTRecord(1232, 0, 0, 0, options), Section.ADDITIONAL);
        return query;
    }

    /** An upstream's answer that echoes a client subnet, with its scope, next to a cookie. */
    private static ByteBuf answerWithSubnet(org.xbill.DNS.Message query) throws IOException {
        org.xbill.DNS.Message answer = answerTo(query, "192.0.2.8");
        answer.addRecord(new OPTRecord(1232, 0, 0, 0, List.of(COOKIE,
                new ClientSubnetOption(24, 20, java.net.InetAddress.getByName("10.244.7.0")))), Section.ADDITIONAL);
        return wire(answer);
    }

    private static List<EDNSOption> subnets(org.xbill.DNS.Message message) {
        return message.getOPT().getOptions(EDNSOption.Code.CLIENT_SUBNET);
    }

    @ParameterizedTest
    @EnumSource(Transport.class)
    void aClientSubnetIsStrippedOnTheWayOutAndTheUpstreamsOnTheWayBack(Transport transport) throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        org.xbill.DNS.Message query = ednsQuery("subnet.example.", true);
        TestExchange exchange = handle(pipeline, wire(query), new TestExchange(transport));

        Forwarded forwarded = upstream.calls.get(0);
        assertEquals(HexFormat.of().formatHex(ednsQuery("subnet.example.", false).toWire()).substring(4),
                ByteBufUtil.hexDump(forwarded.query).substring(4), "what goes upstream: the query without ECS alone");
        assertSame(forwarded.query, local.lastQuery, "the local answers saw the query as forwarded");
        assertEquals(1, count("dotproxy.server.client.subnet.stripped", "proto", transport.tag()));

        ByteBuf upstreamAnswer = answerWithSubnet(query);
        forwarded.callback.onAnswer(upstreamAnswer);

        org.xbill.DNS.Message answer = read(exchange.sent);
        assertTrue(subnets(answer).isEmpty(), "no ECS back to a query sent without one (RFC 7871 §7.2.2)");
        assertEquals(List.of(COOKIE), answer.getOPT().getOptions());
        assertEquals("192.0.2.8", ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress());
        assertEquals(0, upstreamAnswer.refCnt(), "the upstream's answer was released for its copy");
        assertCompleted(pipeline, exchange);
        assertEquals(0, forwarded.query.refCnt());
    }

    @Test
    void passKeepsTheClientSubnetBothWays() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL, false);
        org.xbill.DNS.Message query = ednsQuery("pass.example.", true);
        byte[] sent = query.toWire();
        TestExchange exchange = handle(pipeline, Unpooled.wrappedBuffer(sent), new TestExchange(Transport.UDP));

        Forwarded forwarded = upstream.calls.get(0);
        assertEquals(HexFormat.of().formatHex(sent), ByteBufUtil.hexDump(forwarded.query));
        ByteBuf upstreamAnswer = answerWithSubnet(query);
        forwarded.callback.onAnswer(upstreamAnswer);

        assertSame(upstreamAnswer, exchange.sent, "the upstream's answer as it came");
        assertEquals(1, subnets(read(exchange.sent)).size());
        assertEquals(0, count("dotproxy.server.client.subnet.stripped"));
        assertCompleted(pipeline, exchange);
    }

    @Test
    void aQueryWithoutClientSubnetGoesAsItCameAndItsAnswerIsNotTouched() throws IOException {
        QueryPipeline pipeline = pipeline(Admission.ADMIT_ALL);
        org.xbill.DNS.Message query = ednsQuery("plain.example.", false);
        byte[] sent = query.toWire();
        TestExchange exchange = handle(pipeline, Unpooled.wrappedBuffer(sent), new TestExchange(Transport.TCP));

        Forwarded forwarded = upstream.calls.get(0);
        assertEquals(HexFormat.of().formatHex(sent), ByteBufUtil.hexDump(forwarded.query));
        ByteBuf upstreamAnswer = wire(answerTo(query, "192.0.2.9"));
        forwarded.callback.onAnswer(upstreamAnswer);

        assertSame(upstreamAnswer, exchange.sent, "no parse, no copy");
        assertEquals(0, count("dotproxy.server.client.subnet.stripped"));
        assertCompleted(pipeline, exchange);
    }

    private void assertCompleted(QueryPipeline pipeline, TestExchange exchange) {
        assertEquals(0, exchange.received.refCnt(), "the buffer as received was released");
        if (local.lastQuery != null) {
            assertEquals(0, local.lastQuery.refCnt(), "the query's copy was released");
        }
        assertTrue(exchange.sent != null ^ exchange.abandoned, "exactly one outcome");
        assertEquals(0, pipeline.inFlight());
    }

    private static org.xbill.DNS.Message answerTo(org.xbill.DNS.Message query, String address) throws IOException {
        org.xbill.DNS.Message answer = new org.xbill.DNS.Message(query.getHeader().getID());
        answer.getHeader().setFlag(Flags.QR);
        answer.getHeader().setFlag(Flags.RD);
        answer.getHeader().setFlag(Flags.RA);
        answer.addRecord(query.getQuestion(), Section.QUESTION);
        answer.addRecord(new ARecord(query.getQuestion().getName(), DClass.IN, 60,
                java.net.InetAddress.getByName(address)), Section.ANSWER);
        return answer;
    }

    private static ByteBuf bigAnswerTo(org.xbill.DNS.Message query) {
        org.xbill.DNS.Message answer = new org.xbill.DNS.Message(query.getHeader().getID());
        answer.getHeader().setFlag(Flags.QR);
        answer.addRecord(query.getQuestion(), Section.QUESTION);
        Name name = query.getQuestion().getName();
        for (int i = 0; i < 10; i++) {
            answer.addRecord(new TXTRecord(name, DClass.IN, 60, "x".repeat(100) + i), Section.ANSWER);
        }
        return wire(answer);
    }

    /** The way back to a client, recorded. */
    private static final class TestExchange extends Exchange {
        private final Transport transport;
        ByteBuf received;
        ByteBuf sent;
        boolean abandoned;

        TestExchange(Transport transport) {
            this.transport = transport;
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
            return UnpooledByteBufAllocator.DEFAULT;
        }

        @Override
        void send(ByteBuf answer) {
            assertNull(sent, "one answer per query");
            sent = answer;
        }

        @Override
        void abandon() {
            abandoned = true;
        }
    }

    private record Forwarded(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {}

    /** Records each forwarded query; the test calls back as the upstream would. */
    private static final class RecordingUpstream implements Upstream {
        final List<Forwarded> calls = new ArrayList<>();

        @Override
        public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
            assertNotNull(parsed);
            assertEquals(query.readableBytes(), parsed.length(), "the view is of the buffer forwarded");
            calls.add(new Forwarded(query, parsed, deadlineNanos, callback));
        }

        @Override
        public String name() {
            return "recording";
        }

        @Override
        public void close() {}
    }

    /** Answers with {@link #answer} once when set; counts what it was asked. */
    private static final class RecordingLocalAnswers implements LocalAnswers {
        ByteBuf answer;
        ByteBuf lastQuery;
        int asked;

        @Override
        public ByteBuf answer(ByteBuf query, Message parsed, ByteBufAllocator alloc) {
            asked++;
            lastQuery = query;
            ByteBuf given = answer;
            answer = null;
            return given;
        }
    }
}
