package io.dotproxy.cache;

import static io.dotproxy.cache.Dns.a;
import static io.dotproxy.cache.Dns.reply;
import static io.dotproxy.cache.Dns.soa;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.cache.CacheHarness.Client;
import io.dotproxy.cache.CacheHarness.Forwarded;
import io.dotproxy.cache.Dns.Edns;
import io.dotproxy.testing.Eventually;
import io.dotproxy.upstream.UpstreamFailure;
import io.netty.buffer.ByteBuf;
import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.ClientSubnetOption;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.ExtendedErrorCodeOption;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Section;
import org.xbill.DNS.Type;

/**
 * The cache in front of the upstream: coalescing of identical queries, the ECS bypass,
 * serve-stale (RFC 8767) and prefetch. A recording upstream keeps every query it receives, so each
 * test checks both what the clients got and what reached the upstream.
 */
class CachingUpstreamTest {
    private static final String NAME = "example.org.";

    private CacheHarness harness;

    private CacheHarness harness(CacheHarness.Settings settings) {
        harness = new CacheHarness(settings.build());
        return harness;
    }

    @AfterEach
    void closeHarness() {
        if (harness != null) {
            harness.close();
        }
    }

    private static String randomCase(String name, Random random) {
        StringBuilder spelled = new StringBuilder(name.length());
        for (char c : name.toCharArray()) {
            spelled.append(random.nextBoolean() ? Character.toUpperCase(c) : c);
        }
        return spelled.toString();
    }

    private static String address(Message answer) {
        return ((ARecord) answer.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress();
    }

    private static ExtendedErrorCodeOption ede(Message answer) {
        List<EDNSOption> options = answer.getOPT().getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR);
        assertEquals(1, options.size(), "one EDE option");
        return (ExtendedErrorCodeOption) options.get(0);
    }

    /** 100 queries for one question, with IDs 1 to 100 and the name spelled at random. */
    private List<Message> hundredSpellings(Message base) {
        Random random = new Random(20241204);
        List<Message> queries = new ArrayList<>();
        for (int id = 1; id <= 100; id++) {
            queries.add(Dns.respelled(base, id, randomCase(NAME, random)));
        }
        return queries;
    }

    @Test
    void identicalQueriesInFlightGoUpstreamOnceAndEachClientGetsItsOwnAnswer() {
        harness(CacheHarness.settings());
        List<Message> queries = hundredSpellings(Dns.query(NAME, Type.A, Edns.DO));
        List<Client> clients = new ArrayList<>();
        for (Message query : queries) {
            clients.add(harness.forward(query));
        }

        assertEquals(1, harness.upstream.received.size(), "one query upstream for 100 clients");
        assertEquals(99, harness.count("dotproxy.cache.coalesced"));
        assertEquals(1, harness.caching.inFlight());
        assertTrue(clients.stream().noneMatch(Client::called), "nobody answered before the upstream");
        Forwarded forwarded = harness.upstream.last();
        assertEquals(queries.get(0).getQuestion().getName().toString(),
                forwarded.message().getQuestion().getName().toString(), "the first query went, as it was asked");

        harness.answer(forwarded, reply(queries.get(0), Rcode.NOERROR, a(NAME, 300, "192.0.2.1")));

        for (int i = 0; i < queries.size(); i++) {
            Message query = queries.get(i);
            Message answer = clients.get(i).answer();
            assertEquals(query.getHeader().getID(), answer.getHeader().getID(), "client " + i + ": its own ID");
            assertEquals(query.getQuestion().getName().toString(), answer.getQuestion().getName().toString(),
                    "client " + i + ": its own spelling");
            assertEquals("192.0.2.1", address(answer));
            assertEquals(1, clients.get(i).query.refCnt(), "client " + i + ": its buffer is its own again");
        }
        assertEquals(0, harness.caching.inFlight());
        assertEquals(1, harness.stores("positive"), "stored once");
        assertNotNull(harness.hit(Dns.respelled(queries.get(0), 4242, "EXAMPLE.ORG.")), "and a hit after");
        assertEquals(1, harness.upstream.received.size());
    }

    @Test
    void aFailureReachesEveryWaiter() {
        harness(CacheHarness.settings());
        List<Client> clients = new ArrayList<>();
        for (Message query : hundredSpellings(Dns.query(NAME, Type.A, Edns.PLAIN))) {
            clients.add(harness.forward(query));
        }
        assertEquals(1, harness.upstream.received.size());

        harness.fail(harness.upstream.last(), UpstreamFailure.TIMEOUT);

        for (Client client : clients) {
            assertEquals(List.of(UpstreamFailure.TIMEOUT), client.failures);
            assertEquals(List.of(), client.answers);
            assertEquals(1, client.query.refCnt());
        }
        assertEquals(0, harness.caching.inFlight());
        harness.forward(Dns.query(NAME, Type.A, Edns.PLAIN));
        assertEquals(2, harness.upstream.received.size(), "after the failure the next query goes upstream");
    }

    @Test
    void differentQuestionsAreNotCoalesced() {
        harness(CacheHarness.settings());
        List<Message> queries = List.of(
                Dns.query(NAME, Type.A, Edns.PLAIN),
                Dns.query(NAME, Type.AAAA, Edns.PLAIN),
                Dns.query("www.example.org.", Type.A, Edns.PLAIN),
                Dns.query(NAME, Type.A, Edns.DO),
                Dns.query(NAME, Type.A, Edns.NONE));
        List<Client> clients = new ArrayList<>();
        for (Message query : queries) {
            clients.add(harness.forward(query));
        }

        assertEquals(queries.size(), harness.upstream.received.size(), "each its own query upstream");
        assertEquals(0, harness.count("dotproxy.cache.coalesced"));
        for (int i = 0; i < queries.size(); i++) {
            Forwarded forwarded = harness.upstream.received.get(i);
            assertEquals(queries.get(i).getQuestion(), forwarded.message().getQuestion());
            harness.answer(forwarded, reply(queries.get(i), Rcode.NOERROR, a(queries.get(i).getQuestion().getName().toString(), 60, "192.0.2." + (i + 1))));
        }
        for (int i = 0; i < queries.size(); i++) {
            assertEquals("192.0.2." + (i + 1), address(clients.get(i).answer()), "client " + i + " got its own");
        }
    }

    @Test
    void aQueryWithClientSubnetIsNeitherAnsweredFromNorStoredIntoTheCache() throws Exception {
        harness(CacheHarness.settings());
        Message plain = Dns.query(NAME, Type.A, Edns.PLAIN);
        harness.fill(plain, reply(plain, Rcode.NOERROR, a(NAME, 300, "192.0.2.1")));
        ClientSubnetOption subnet = new ClientSubnetOption(24, InetAddress.getByName("198.51.100.0"));
        Message withSubnet = Dns.query(NAME, Type.A, Edns.PLAIN, subnet);

        assertNull(harness.hit(withSubnet), "not answered from the cache");
        Client first = harness.forward(withSubnet);
        Client second = harness.forward(Dns.respelled(withSubnet, 99, NAME));

        assertEquals(3, harness.upstream.received.size(), "both went upstream: no coalescing either");
        assertSame(first, harness.upstream.received.get(1).callback(), "passed on as it came");
        assertSame(second, harness.upstream.received.get(2).callback());
        Message answer = Dns.replyWithOptions(withSubnet, Rcode.NOERROR,
                new ClientSubnetOption(24, 24, InetAddress.getByName("198.51.100.0")));
        answer.addRecord(a(NAME, 300, "203.0.113.7"), Section.ANSWER);
        harness.answer(harness.upstream.received.get(1), answer);
        assertEquals("203.0.113.7", address(first.answer()));

        assertEquals("192.0.2.1", address(harness.hit(plain)), "the cached answer was not replaced");
        assertEquals(1, harness.stores("positive"));
        assertEquals(0, harness.stores("client_subnet"), "not even offered");
    }

    private CacheHarness staleHarness() {
        return harness(CacheHarness.settings().maxStale(Duration.ofHours(1)));
    }

    @ParameterizedTest(name = "{0}, EDNS {1}")
    @CsvSource({"NOERROR, PLAIN, 3", "NOERROR, DO, 3", "NOERROR, NONE, -1", "NXDOMAIN, PLAIN, 19",
            "NXDOMAIN, NONE, -1"})
    void anExpiredAnswerIsServedStaleWhenTheUpstreamFails(String rcode, Edns edns, int expectedEde) {
        staleHarness();
        Message query = Dns.query(NAME, Type.A, edns);
        Message answer = rcode.equals("NOERROR")
                ? reply(query, Rcode.NOERROR, a(NAME, 60, "192.0.2.1"), Dns.ns(NAME, 600, "ns1.example.org."))
                : reply(query, Rcode.NXDOMAIN, soa(NAME, 600, 60));
        harness.fill(query, answer);
        harness.advance(Duration.ofSeconds(61));
        Message asked = Dns.respelled(query, 0x5A1E, "EXAMPLE.org.");
        assertNull(harness.hit(asked), "expired: no fresh hit");

        Client client = harness.forward(asked);
        assertEquals(2, harness.upstream.received.size(), "the upstream is asked first");
        harness.fail(harness.upstream.last(), UpstreamFailure.CONNECT);

        Message stale = client.answer();
        assertEquals(Rcode.value(rcode), stale.getRcode());
        assertEquals(0x5A1E, stale.getHeader().getID());
        assertEquals("EXAMPLE.org.", stale.getQuestion().getName().toString());
        assertEquals(Dns.records(answer), Dns.records(stale));
        assertTrue(Dns.ttls(stale).stream().allMatch(ttl -> ttl == AnswerRecord.STALE_TTL),
                "every TTL 30 (RFC 8767 §4): " + Dns.ttls(stale));
        if (expectedEde < 0) {
            assertNull(stale.getOPT(), "no EDNS asked, none given");
        } else {
            assertEquals(expectedEde, ede(stale).getErrorCode());
        }
        assertEquals(1, harness.count("dotproxy.cache.stale.answers"));
    }

    @Test
    void everyClientWaitingOnAFailedQueryGetsTheStaleAnswerAsItsOwn() {
        staleHarness();
        Message query = Dns.query(NAME, Type.A, Edns.PLAIN);
        Message answer = reply(query, Rcode.NOERROR, a(NAME, 60, "192.0.2.1"));
        harness.fill(query, answer);
        harness.advance(Duration.ofSeconds(61));
        List<Message> queries = hundredSpellings(query).subList(0, 3);
        List<Client> clients = new ArrayList<>();
        for (Message asked : queries) {
            clients.add(harness.forward(asked));
        }
        assertEquals(2, harness.upstream.received.size(), "the three went upstream as one");

        harness.fail(harness.upstream.last(), UpstreamFailure.CONNECT);

        for (int i = 0; i < queries.size(); i++) {
            Message stale = clients.get(i).answer();
            assertEquals(queries.get(i).getHeader().getID(), stale.getHeader().getID());
            assertEquals(queries.get(i).getQuestion().getName().toString(), stale.getQuestion().getName().toString());
            assertEquals("192.0.2.1", address(stale));
            assertEquals(List.of((long) AnswerRecord.STALE_TTL), Dns.ttls(stale));
            assertEquals(3, ede(stale).getErrorCode(), "client " + i);
        }
        assertEquals(3, harness.count("dotproxy.cache.stale.answers"));
    }

    @Test
    void pastMaxStaleTheFailureGoesThrough() {
        staleHarness();
        Message query = Dns.query(NAME, Type.A, Edns.PLAIN);
        harness.fill(query, reply(query, Rcode.NOERROR, a(NAME, 60, "192.0.2.1")));
        harness.advance(Duration.ofSeconds(60).plus(Duration.ofHours(1)));

        Client client = harness.forward(query);
        harness.fail(harness.upstream.last(), UpstreamFailure.TIMEOUT);

        assertEquals(List.of(UpstreamFailure.TIMEOUT), client.failures);
        assertEquals(List.of(), client.answers);
        assertEquals(0, harness.count("dotproxy.cache.stale.answers"));
    }

    @Test
    void withoutMaxStaleAnExpiredAnswerIsNeverServed() {
        harness(CacheHarness.settings());
        Message query = Dns.query(NAME, Type.A, Edns.PLAIN);
        harness.fill(query, reply(query, Rcode.NOERROR, a(NAME, 60, "192.0.2.1")));
        harness.advance(Duration.ofSeconds(61));

        Client client = harness.forward(query);
        harness.fail(harness.upstream.last(), UpstreamFailure.TIMEOUT);

        assertEquals(List.of(UpstreamFailure.TIMEOUT), client.failures);
        assertEquals(0, harness.count("dotproxy.cache.stale.answers"));
    }

    @Test
    void aServfailFromTheUpstreamIsReplacedByTheStaleAnswer() {
        staleHarness();
        Message query = Dns.query(NAME, Type.A, Edns.PLAIN);
        harness.fill(query, reply(query, Rcode.NOERROR, a(NAME, 60, "192.0.2.1")));
        harness.advance(Duration.ofSeconds(61));

        Client client = harness.forward(query);
        harness.answer(harness.upstream.last(), reply(query, Rcode.SERVFAIL));

        Message stale = client.answer();
        assertEquals(Rcode.NOERROR, stale.getRcode());
        assertEquals("192.0.2.1", address(stale));
        assertEquals(ExtendedErrorCodeOption.STALE_ANSWER, ede(stale).getErrorCode());
        assertEquals(1, harness.stores("kept_older"), "the SERVFAIL did not push the answer out");
        Client next = harness.forward(query);
        harness.fail(harness.upstream.last(), UpstreamFailure.TIMEOUT);
        assertEquals("192.0.2.1", address(next.answer()), "still there for the next one");
    }

    @Test
    void aServfailWithNothingStaleAtHandGoesToTheClientAsTheUpstreamSentIt() {
        staleHarness();
        Message query = Dns.query(NAME, Type.A, Edns.PLAIN);

        Client client = harness.forward(query);
        harness.answer(harness.upstream.last(), reply(query, Rcode.SERVFAIL));

        Message answer = client.answer();
        assertEquals(Rcode.SERVFAIL, answer.getRcode());
        assertTrue(answer.getOPT().getOptions(EDNSOption.Code.EDNS_EXTENDED_ERROR).isEmpty(),
                "not a stale answer: nothing was stale");
        assertEquals(0, harness.count("dotproxy.cache.stale.answers"));
    }

    @Test
    void aSlowUpstreamLetsTheStaleAnswerGoAfterTheTimeoutAndRefreshesTheEntryLater() throws Exception {
        harness(CacheHarness.settings().maxStale(Duration.ofHours(1)).staleAnswerTimeout(Duration.ofMillis(300)));
        Message query = Dns.query(NAME, Type.A, Edns.PLAIN);
        harness.fill(query, reply(query, Rcode.NOERROR, a(NAME, 60, "192.0.2.1")));
        harness.advance(Duration.ofSeconds(61));

        Client client = harness.forward(query);
        assertFalse(client.called(), "it waits for the upstream first");
        assertTrue(Eventually.holds(Duration.ofSeconds(5), Duration.ofMillis(10), client::called),
                "the stale answer came after the timeout");

        Message stale = client.answer();
        assertEquals("192.0.2.1", address(stale));
        assertEquals(List.of((long) AnswerRecord.STALE_TTL), Dns.ttls(stale));
        assertEquals(ExtendedErrorCodeOption.STALE_ANSWER, ede(stale).getErrorCode());
        Client late = harness.forward(Dns.respelled(query, 77, "Example.Org."));
        assertEquals(77, late.answer().getHeader().getID(), "one who comes later gets the stale answer at once");
        assertEquals(2, harness.upstream.received.size(), "and no query of its own");
        assertEquals(2, harness.count("dotproxy.cache.stale.answers"));

        harness.answer(harness.upstream.last(), reply(query, Rcode.NOERROR, a(NAME, 120, "192.0.2.2")));

        assertEquals(1, client.answers.size(), "no second answer to anyone");
        assertEquals(1, late.answers.size());
        Message fresh = harness.hit(query);
        assertNotNull(fresh, "the late upstream answer refreshed the entry");
        assertEquals("192.0.2.2", address(fresh));
        assertEquals(List.of(120L), Dns.ttls(fresh));
        assertEquals(0, harness.caching.inFlight());
    }

    @Test
    void aPopularEntryIsRefreshedInTheLastTenthOfItsLifetime() {
        harness(CacheHarness.settings().prefetchAfter(3));
        Message query = Dns.query(NAME, Type.A, Edns.PLAIN);
        harness.fill(query, reply(query, Rcode.NOERROR, a(NAME, 100, "192.0.2.1")));
        harness.advance(Duration.ofSeconds(50));
        for (int i = 0; i < 3; i++) {
            assertNotNull(harness.hit(query));
        }
        assertEquals(1, harness.upstream.received.size(), "hits before the last tenth refresh nothing");

        harness.advance(Duration.ofSeconds(41)); // 9 s left of 100
        assertNotNull(harness.hit(query));
        assertNotNull(harness.hit(query));
        Message third = harness.hit(query);

        assertEquals(List.of(9L), Dns.ttls(third), "the hit itself is answered from the cache");
        assertEquals(2, harness.upstream.received.size(), "one refresh went upstream");
        assertEquals(1, harness.count("dotproxy.cache.prefetches"));
        Forwarded refresh = harness.upstream.last();
        assertEquals(query.getQuestion(), refresh.message().getQuestion());
        assertEquals(1, harness.caching.inFlight(), "in flight with no one waiting");
        for (int i = 0; i < 5; i++) {
            assertNotNull(harness.hit(query));
        }
        assertEquals(2, harness.upstream.received.size(), "only one refresh at a time");

        ByteBuf refreshQuery = refresh.query();
        harness.answer(refresh, reply(query, Rcode.NOERROR, a(NAME, 100, "192.0.2.2")));

        assertEquals(0, refreshQuery.refCnt(), "the refresh's own query was released");
        assertEquals(0, harness.caching.inFlight());
        Message fresh = harness.hit(query);
        assertEquals("192.0.2.2", address(fresh), "the refresh replaced the entry");
        assertEquals(List.of(100L), Dns.ttls(fresh));
        harness.advance(Duration.ofSeconds(20));
        Message later = harness.hit(query);
        assertNotNull(later, "past the old entry's expiry, a hit still");
        assertEquals(List.of(80L), Dns.ttls(later));
        assertEquals(2, harness.upstream.received.size());
    }
}
