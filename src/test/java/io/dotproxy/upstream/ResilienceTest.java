package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.Eventually;
import io.dotproxy.testing.FakeUpstream;
import io.dotproxy.testing.ProxyHarness;
import io.dotproxy.testing.TestCa;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;

/**
 * Fault injection: the preferred upstream misbehaves in one way, a second one is healthy. Every
 * client query must be answered, by the healthy upstream, with extra latency bounded by one
 * attempt's timeout; and once the faulty upstream heals it is noticed and used again.
 */
class ResilienceTest {
    private static final TestCa CA = TestCa.create();
    private static final TestCa.Issued GOOD = CA.issue(List.of(ProxyHarness.TLS_NAME), List.of("127.0.0.1"));
    private static final Duration ATTEMPT = Duration.ofMillis(300);
    /** Generous slack for a shared, noisy machine; the bound itself is one attempt. */
    private static final Duration SLACK = Duration.ofMillis(700);
    private static final String FROM_FAULTY = "192.0.2.1";
    private static final String FROM_HEALTHY = "192.0.2.2";

    /** One way to misbehave, and how to get well again. */
    enum Fault {
        REFUSES_CONNECTIONS,
        ACCEPTS_TCP_BUT_NEVER_SPEAKS_TLS,
        NEVER_ANSWERS,
        RESETS_MID_STREAM,
        ANSWERS_SLOWLY,
        WRONG_CERTIFICATE_NAME,
        EXPIRED_CERTIFICATE,
        ANSWERS_SERVFAIL
    }

    /** The faulty upstream in its current form. */
    private static final class Faulty implements AutoCloseable {
        final Fault fault;
        int port;
        FakeUpstream fake;
        ServerSocket silentSocket;

        Faulty(Fault fault) throws IOException {
            this.fault = fault;
            FakeUpstream.Behaviour answering = (q, c) -> new FakeUpstream.Answer(FakeUpstream.answerA(q, FROM_FAULTY), Duration.ZERO);
            switch (fault) {
                case REFUSES_CONNECTIONS -> {
                    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                        port = probe.getLocalPort();
                    }
                }
                case ACCEPTS_TCP_BUT_NEVER_SPEAKS_TLS -> {
                    silentSocket = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
                    port = silentSocket.getLocalPort();
                }
                case NEVER_ANSWERS -> fake = FakeUpstream.start(GOOD, (q, c) -> new FakeUpstream.Silence());
                case RESETS_MID_STREAM -> fake = FakeUpstream.start(GOOD, (q, c) -> new FakeUpstream.Close());
                case ANSWERS_SLOWLY -> fake = FakeUpstream.start(GOOD, (q, c) ->
                        new FakeUpstream.Answer(FakeUpstream.answerA(q, FROM_FAULTY), Duration.ofMillis(1500)));
                case WRONG_CERTIFICATE_NAME -> fake = FakeUpstream.start(CA.issue(List.of("other.test"), List.of()), answering);
                case EXPIRED_CERTIFICATE -> fake = FakeUpstream.start(CA.issue(List.of(ProxyHarness.TLS_NAME), List.of(),
                        Instant.now().minus(Duration.ofDays(2)), Instant.now().minus(Duration.ofDays(1))), answering);
                case ANSWERS_SERVFAIL -> fake = FakeUpstream.start(GOOD, FakeUpstream.servfail());
                default -> throw new IllegalArgumentException(fault.name());
            }
            if (fake != null) {
                port = fake.port();
            }
        }

        /** Becomes a well-behaved resolver on the same port. */
        void heal() throws IOException {
            FakeUpstream.Behaviour answering = (q, c) -> new FakeUpstream.Answer(FakeUpstream.answerA(q, FROM_FAULTY), Duration.ZERO);
            switch (fault) {
                case NEVER_ANSWERS, RESETS_MID_STREAM, ANSWERS_SLOWLY, ANSWERS_SERVFAIL -> fake.behave(answering);
                default -> {
                    close(); // nothing listening, or a bad certificate: a good server on the same port
                    fake = FakeUpstream.start(GOOD, answering, port);
                }
            }
        }

        @Override
        public void close() throws IOException {
            if (fake != null) {
                fake.close();
            }
            if (silentSocket != null) {
                silentSocket.close();
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Fault.class)
    void healthyUpstreamAnswersEveryQueryAndTheFaultyOneIsUsedAgainOnceHealed(Fault fault) throws Exception {
        FakeUpstream.Behaviour healthy = (q, c) -> new FakeUpstream.Answer(FakeUpstream.answerA(q, FROM_HEALTHY), Duration.ZERO);
        try (Faulty faulty = new Faulty(fault);
             FakeUpstream good = FakeUpstream.start(GOOD, healthy);
             ProxyHarness proxy = ProxyHarness.builder(CA)
                     .upstream("127.0.0.1:" + faulty.port + "#" + ProxyHarness.TLS_NAME)
                     .upstream(good)
                     .policy("failover")
                     .timeout(Duration.ofSeconds(2))
                     .attemptTimeout(ATTEMPT)
                     .firstBackOff(Duration.ofMillis(200))
                     .start()) {
            for (int i = 0; i < 20; i++) {
                Message query = DnsClient.query("q" + i + ".example.");
                long started = System.nanoTime();
                Message answer = i % 3 == 0 ? DnsClient.tcp(proxy.port(), query) : DnsClient.udp(proxy.port(), query);
                Duration took = Duration.ofNanos(System.nanoTime() - started);
                assertEquals(Rcode.NOERROR, answer.getRcode(), fault + " query " + i);
                assertEquals(FROM_HEALTHY, address(answer), fault + " query " + i);
                assertTrue(took.compareTo(ATTEMPT.plus(SLACK)) < 0, fault + " query " + i + " took " + took);
            }

            faulty.heal();

            String from = Eventually.retry(Duration.ofSeconds(15), Duration.ofMillis(50), () -> {
                Message answer = DnsClient.udp(proxy.port(), DnsClient.query("after.example."));
                assertEquals(Rcode.NOERROR, answer.getRcode());
                return address(answer);
            }, FROM_FAULTY::equals);
            assertEquals(FROM_FAULTY, from, fault + ": the healed, preferred upstream answers again");
            assertEquals(UpstreamHealth.State.UP, proxy.group().members().get(0).health().state());
        }
    }

    private static String address(Message answer) {
        return ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress();
    }
}
