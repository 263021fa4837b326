package io.dotproxy.cache;

import static io.dotproxy.cache.Dns.a;
import static io.dotproxy.cache.Dns.ns;
import static io.dotproxy.cache.Dns.reply;
import static io.dotproxy.cache.Dns.soa;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.cache.Dns.Edns;
import io.netty.buffer.ByteBuf;
import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.ClientSubnetOption;
import org.xbill.DNS.DClass;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;
import org.xbill.DNS.Record;
import org.xbill.DNS.Section;
import org.xbill.DNS.TXTRecord;
import org.xbill.DNS.Type;

/**
 * What the cache keeps, for how long, and what a hit looks like: answers go in as an upstream's
 * answer to a forwarded miss (or straight through {@link ResponseCache#store}), and come out
 * through {@link CachingUpstream#answer}, the pipeline's fresh-hit path. dnsjava builds the
 * answers and reads the hits; the clock moves only when a test moves it.
 */
class ResponseCacheTest {
    private CacheHarness harness;

    private CacheHarness harness(CacheHarness.Settings settings) {
        harness = new CacheHarness(settings.build());
        return harness;
    }

    private CacheHarness harness() {
        return harness(CacheHarness.settings());
    }

    @AfterEach
    void closeHarness() {
        if (harness != null) {
            harness.close();
        }
    }

    private static Message query(String name) {
        return Dns.query(name, Type.A, Edns.PLAIN);
    }

    @ParameterizedTest(name = "clock starting at {0}")
    @ValueSource(longs = {CacheHarness.START, Long.MAX_VALUE - 5_000_000_000L, -30_000_000_000L})
    void hitsAreAgedByTheTimeInTheCacheAndExpireWithTheSmallestTtl(long start) {
        harness = new CacheHarness(CacheHarness.settings().build(), start);
        Message query = query("example.org.");
        Message answer = reply(query, Rcode.NOERROR, a("example.org.", 300, "192.0.2.1"),
                ns("example.org.", 60, "ns1.example.org."));
        Message first = harness.fill(query, answer);
        assertEquals(List.of(300L, 60L), Dns.ttls(first), "the first client gets the upstream's answer as it came");

        harness.advance(Duration.ofSeconds(10));
        Message hit = harness.hit(query);

        assertNotNull(hit, "a hit 10 s later");
        assertEquals(List.of(290L, 50L), Dns.ttls(hit));
        assertEquals(Dns.records(answer), Dns.records(hit), "the same records");
        harness.advance(Duration.ofMillis(49_999));
        assertEquals(List.of(241L, 1L), Dns.ttls(harness.hit(query)), "59.999 s: still fresh");
        harness.advance(Duration.ofMillis(1));
        assertNull(harness.hit(query), "60 s: the smallest TTL has run out");
        assertEquals(2, harness.count("dotproxy.cache.hits"));
        assertEquals(1, harness.count("dotproxy.cache.misses"), "the expired entry is a miss");
        assertEquals(1, harness.upstream.received.size(), "the hits did not go upstream");
    }

    @Test
    void aHitCarriesTheClientsIdRdBitAndNameCase() {
        harness();
        Message stored = query("example.org.");
        harness.fill(stored, reply(stored, Rcode.NOERROR, a("example.org.", 300, "192.0.2.1")));
        Message asked = Dns.respelled(stored, 0xBEEF, "ExAmPlE.oRg.");
        asked.getHeader().unsetFlag(Flags.RD);

        Message hit = harness.hit(asked);

        assertEquals(0xBEEF, hit.getHeader().getID());
        assertFalse(hit.getHeader().getFlag(Flags.RD), "RD as the client asked (RFC 1035 §4.1.1)");
        assertTrue(hit.getHeader().getFlag(Flags.QR));
        assertTrue(hit.getHeader().getFlag(Flags.RA));
        assertEquals("ExAmPlE.oRg.", hit.getQuestion().getName().toString(), "the name as the client spelled it");
        assertEquals("192.0.2.1", ((ARecord) hit.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress());

        asked.getHeader().setFlag(Flags.RD);
        asked.getHeader().setID(7);
        Message again = harness.hit(asked);
        assertTrue(again.getHeader().getFlag(Flags.RD));
        assertEquals(7, again.getHeader().getID());
    }

    /** NXDOMAIN, and NODATA: NOERROR without records in the answer section. */
    enum Negative {
        NXDOMAIN(Rcode.NXDOMAIN), NODATA(Rcode.NOERROR);

        final int rcode;

        Negative(int rcode) {
            this.rcode = rcode;
        }
    }

    @ParameterizedTest
    @EnumSource(Negative.class)
    void aNegativeAnswerIsKeptForTheSoaMinimum(Negative negative) {
        harness();
        Message query = query("missing.example.org.");
        Message answer = reply(query, negative.rcode, soa("example.org.", 3600, 300));
        harness.store(query, answer);
        assertEquals(1, harness.stores("negative"));

        Message hit = harness.hit(query);
        assertEquals(negative.rcode, hit.getRcode());
        assertEquals(List.of(300L), Dns.ttls(hit), "the SOA's TTL is the time the answer holds (RFC 2308 §5)");
        assertEquals(Dns.records(answer), Dns.records(hit));

        harness.advance(Duration.ofSeconds(299));
        assertEquals(List.of(1L), Dns.ttls(harness.hit(query)));
        harness.advance(Duration.ofSeconds(1));
        assertNull(harness.hit(query), "gone after min(SOA TTL, MINIMUM)");
    }

    @ParameterizedTest
    @EnumSource(Negative.class)
    void aNegativeAnswerWithoutAnSoaIsNotKept(Negative negative) {
        harness();
        Message query = query("missing.example.org.");
        // A referral looks like NODATA but for its NS records: no SOA either way.
        harness.store(query, reply(query, negative.rcode, ns("example.org.", 3600, "ns1.example.org.")));

        assertNull(harness.hit(query));
        assertEquals(1, harness.stores("no_soa"));
    }

    @ParameterizedTest
    @EnumSource(Negative.class)
    void maxNegativeTtlCapsANegativeAnswer(Negative negative) {
        harness(CacheHarness.settings().maxNegativeTtl(Duration.ofSeconds(60)));
        Message query = query("missing.example.org.");
        harness.store(query, reply(query, negative.rcode, soa("example.org.", 3600, 300)));

        assertEquals(List.of(60L), Dns.ttls(harness.hit(query)));
        harness.advance(Duration.ofSeconds(59));
        assertNotNull(harness.hit(query));
        harness.advance(Duration.ofSeconds(1));
        assertNull(harness.hit(query));
    }

    @Test
    void minTtlRaisesAndMaxTtlLowersEachTtlAndTheLifetime() {
        harness(CacheHarness.settings().minTtl(Duration.ofSeconds(60)).maxTtl(Duration.ofSeconds(600)));
        Message query = query("example.org.");
        harness.store(query, reply(query, Rcode.NOERROR, a("example.org.", 5, "192.0.2.1"),
                a("example.org.", 86400, "192.0.2.2"), a("example.org.", 100, "192.0.2.3")));

        assertEquals(List.of(60L, 600L, 100L), Dns.ttls(harness.hit(query)));
        harness.advance(Duration.ofSeconds(59));
        assertEquals(List.of(1L, 541L, 41L), Dns.ttls(harness.hit(query)));
        harness.advance(Duration.ofSeconds(1));
        assertNull(harness.hit(query), "kept for the floor, not for the upstream's 5 s, nor longer");

        Message longLived = query("long.example.org.");
        harness.store(longLived, reply(longLived, Rcode.NOERROR, a("long.example.org.", 86400, "192.0.2.4")));
        harness.advance(Duration.ofSeconds(599));
        assertEquals(List.of(1L), Dns.ttls(harness.hit(longLived)));
        harness.advance(Duration.ofSeconds(1));
        assertNull(harness.hit(longLived), "kept for the cap, not a day");
    }

    @Test
    void servfailIsKeptForFiveSeconds() {
        harness();
        Message query = query("broken.example.org.");
        harness.store(query, reply(query, Rcode.SERVFAIL));
        assertEquals(1, harness.stores("servfail"));

        harness.advance(Duration.ofSeconds(ResponseCache.SERVFAIL_SECONDS).minusMillis(1));
        assertEquals(Rcode.SERVFAIL, harness.hit(query).getRcode());
        harness.advance(Duration.ofMillis(1));
        assertNull(harness.hit(query));
    }

    @Test
    void anExpiredServfailIsNoStaleAnswerAndANewOneIsKeptAgain() {
        harness(CacheHarness.settings().maxStale(Duration.ofHours(1)));
        Message query = query("broken.example.org.");
        harness.store(query, reply(query, Rcode.SERVFAIL));
        harness.advance(Duration.ofSeconds(ResponseCache.SERVFAIL_SECONDS + 1));
        ByteBuf wire = Dns.wire(query);
        assertFalse(harness.onLoop(() -> harness.cache.holds(Question.key(wire, CacheHarness.parse(wire)), wire,
                CacheHarness.parse(wire), harness.cache.now())), "nothing to serve stale: a SERVFAIL holds no data");

        harness.store(query, reply(query, Rcode.SERVFAIL));

        assertEquals(2, harness.stores("servfail"), "the upstream still fails: spared for another 5 s");
        assertEquals(0, harness.stores("kept_older"));
        assertEquals(Rcode.SERVFAIL, harness.hit(query).getRcode());
    }

    @Test
    void servfailDoesNotReplaceAnAnswerThatCanStillBeServedStale() {
        harness(CacheHarness.settings().maxStale(Duration.ofHours(1)));
        Message query = query("example.org.");
        harness.store(query, reply(query, Rcode.NOERROR, a("example.org.", 60, "192.0.2.1")));
        harness.advance(Duration.ofSeconds(120));

        harness.store(query, reply(query, Rcode.SERVFAIL));

        assertEquals(1, harness.stores("kept_older"));
        assertEquals(0, harness.stores("servfail"));
        ByteBuf wire = Dns.wire(query);
        ByteBuf kept = harness.onLoop(() -> harness.cache.stale(Question.key(wire, CacheHarness.parse(wire)), wire,
                CacheHarness.parse(wire), harness.cache.now(), io.netty.buffer.UnpooledByteBufAllocator.DEFAULT));
        assertNotNull(kept, "the stale answer is still there");
        Message stale = Dns.read(kept);
        assertEquals(Rcode.NOERROR, stale.getRcode());
        assertEquals("192.0.2.1", ((ARecord) stale.getSection(Section.ANSWER).get(0)).getAddress().getHostAddress());

        // Without stale serving the expired answer is gone, and a SERVFAIL takes its place.
        harness.close();
        harness(CacheHarness.settings());
        harness.store(query, reply(query, Rcode.NOERROR, a("example.org.", 60, "192.0.2.1")));
        harness.advance(Duration.ofSeconds(120));
        harness.store(query, reply(query, Rcode.SERVFAIL));
        assertEquals(1, harness.stores("servfail"));
        assertEquals(Rcode.SERVFAIL, harness.hit(query).getRcode());
    }

    /** Ways a query can differ from the one an answer was stored for, each of which must miss. */
    enum Variant {
        DO(q -> Dns.query("example.org.", Type.A, Edns.DO)),
        NO_EDNS(q -> Dns.query("example.org.", Type.A, Edns.NONE)),
        CD(q -> {
            Message cd = Dns.query("example.org.", Type.A, Edns.PLAIN);
            cd.getHeader().setFlag(Flags.CD);
            return cd;
        }),
        TYPE(q -> Dns.query("example.org.", Type.AAAA, Edns.PLAIN)),
        CLASS(q -> Dns.query("example.org.", Type.A, DClass.CH, Edns.PLAIN)),
        NAME(q -> Dns.query("example.com.", Type.A, Edns.PLAIN)),
        LONGER_NAME(q -> Dns.query("www.example.org.", Type.A, Edns.PLAIN));

        final UnaryOperator<Message> from;

        Variant(UnaryOperator<Message> from) {
            this.from = from;
        }
    }

    @ParameterizedTest
    @EnumSource(Variant.class)
    void queriesThatDifferInDoCdEdnsTypeClassOrNameHaveEntriesOfTheirOwn(Variant variant) {
        harness();
        Message plain = Dns.query("example.org.", Type.A, Edns.PLAIN);
        Message other = variant.from.apply(plain);
        harness.store(plain, reply(plain, Rcode.NOERROR, a("example.org.", 300, "192.0.2.1")));

        assertNull(harness.hit(other), variant + ": not served the plain query's answer");
        assertNotNull(harness.hit(plain));

        // Both directions: the variant's own answer is kept apart, and the plain one stays.
        Record own = Record.newRecord(other.getQuestion().getName(), Type.TXT, other.getQuestion().getDClass(), 300,
                new byte[] {3, 'o', 'w', 'n'});
        harness.store(other, reply(other, Rcode.NOERROR, own));
        Message variantHit = harness.hit(other);
        assertNotNull(variantHit, variant + ": its own answer");
        assertEquals(Type.TXT, variantHit.getSection(Section.ANSWER).get(0).getType());
        assertEquals(Type.A, harness.hit(plain).getSection(Section.ANSWER).get(0).getType());
        assertEquals(2, harness.cache.entries());
    }

    /** Answers that must never be kept, and the store outcome that says why. */
    enum NotKept {
        TRUNCATED("truncated") {
            @Override
            Message answer(Message query) {
                Message answer = positive(query);
                answer.getHeader().setFlag(Flags.TC);
                return answer;
            }
        },
        OTHER_NAME("mismatch") {
            @Override
            Message answer(Message query) {
                return positive(Dns.query("example.com.", Type.A, Edns.PLAIN));
            }
        },
        OTHER_TYPE("mismatch") {
            @Override
            Message answer(Message query) {
                return positive(Dns.query("example.org.", Type.AAAA, Edns.PLAIN));
            }
        },
        NO_QUESTION("mismatch") {
            @Override
            Message answer(Message query) {
                Message answer = positive(query);
                answer.removeAllRecords(Section.QUESTION);
                return answer;
            }
        },
        REFUSED("rcode") {
            @Override
            Message answer(Message query) {
                return reply(query, Rcode.REFUSED);
            }
        },
        FORMERR("rcode") {
            @Override
            Message answer(Message query) {
                return reply(query, Rcode.FORMERR);
            }
        },
        NOTIMP("rcode") {
            @Override
            Message answer(Message query) {
                return reply(query, Rcode.NOTIMP);
            }
        },
        ZERO_TTL("zero_ttl") {
            @Override
            Message answer(Message query) {
                return reply(query, Rcode.NOERROR, a("example.org.", 300, "192.0.2.1"),
                        a("example.org.", 0, "192.0.2.2"));
            }
        },
        NEGATIVE_ZERO_TTL("zero_ttl") {
            @Override
            Message answer(Message query) {
                return reply(query, Rcode.NXDOMAIN, soa("example.org.", 3600, 0));
            }
        },
        CLIENT_SUBNET("client_subnet") {
            @Override
            Message answer(Message query) {
                Message answer;
                try {
                    answer = Dns.replyWithOptions(query, Rcode.NOERROR,
                            new ClientSubnetOption(24, 24, InetAddress.getByName("198.51.100.0")));
                } catch (java.net.UnknownHostException e) {
                    throw new IllegalStateException(e);
                }
                answer.addRecord(a("example.org.", 300, "192.0.2.1"), Section.ANSWER);
                return answer;
            }
        };

        final String result;

        NotKept(String result) {
            this.result = result;
        }

        abstract Message answer(Message query);

        static Message positive(Message query) {
            return reply(query, Rcode.NOERROR, a(query.getQuestion().getName().toString(), 300, "192.0.2.1"));
        }
    }

    @ParameterizedTest
    @EnumSource(NotKept.class)
    void answersThatMustNotBeKeptAreNot(NotKept notKept) {
        harness();
        Message query = query("example.org.");

        harness.store(query, notKept.answer(query));

        assertEquals(1, harness.stores(notKept.result), notKept + " counted as " + notKept.result);
        assertNull(harness.hit(query), notKept + ": a miss");
        assertEquals(0, harness.cache.entries());
        assertEquals(0, harness.cache.bytes());
    }

    @Test
    void everyTtlOfALargeAnswerIsAgedAndTheHitIsSpelledAsTheClientAsked() {
        harness();
        Message query = query("big.example.org.");
        // The upstream echoes the question in its own spelling (as 0x20-randomising upstreams do).
        Message answer = reply(Dns.respelled(query, query.getHeader().getID(), "BIG.Example.ORG."), Rcode.NOERROR);
        List<Long> ttls = new ArrayList<>();
        for (int i = 0; i < 30; i++) { // TTLs from octet 40 to past octet 2,500: offsets of one and two octets
            answer.addRecord(new TXTRecord(Dns.name("big.example.org."), DClass.IN, 100 + i, "x".repeat(70)),
                    Section.ANSWER);
            ttls.add(90L + i);
        }
        assertTrue(answer.toWire().length > 2500);
        harness.fill(query, answer);

        harness.advance(Duration.ofSeconds(10));
        Message hit = harness.hit(Dns.respelled(query, 9, "bIg.eXaMpLe.oRg."));

        assertEquals(ttls, Dns.ttls(hit), "every TTL 10 s less");
        assertEquals(Dns.records(answer), Dns.records(hit));
        assertEquals("bIg.eXaMpLe.oRg.", hit.getQuestion().getName().toString(), "the name as the client spelled it");
        assertEquals(9, hit.getHeader().getID());
    }

    @Test
    void aBigAnswerIsServedWholeAndFittingItToTheClientIsThePipelinesJob() {
        harness();
        Message query = query("big.example.org.");
        Message answer = reply(query, Rcode.NOERROR);
        for (int i = 0; i < 40; i++) {
            answer.addRecord(new TXTRecord(Dns.name("big.example.org."), DClass.IN, 300,
                    "record " + i + " " + "x".repeat(80)), Section.ANSWER);
        }
        int size = answer.toWire().length;
        assertTrue(size > 3000, "larger than any UDP client asks for by default: " + size);
        harness.store(query, answer);

        ByteBuf hit = harness.ask(Dns.wire(query));

        assertEquals(size, hit.readableBytes(), "the whole answer, not cut");
        Message read = Dns.read(hit);
        assertFalse(read.getHeader().getFlag(Flags.TC));
        assertEquals(Dns.records(answer), Dns.records(read));
    }

    @Test
    void theSizeBoundHoldsAndEvictionsAreCounted() {
        long maxBytes = 64 * 1024;
        harness(CacheHarness.settings().maxBytes(maxBytes));
        int names = 1000;
        List<Message> queries = new ArrayList<>();
        for (int i = 0; i < names; i++) {
            String name = "host-" + i + ".example.org.";
            Message query = query(name);
            queries.add(query);
            for (int ask = 0; ask < 2; ask++) { // asked twice: the second answer gets past the doorkeeper
                harness.store(query, reply(query, Rcode.NOERROR, a(name, 3600, "192.0.2." + (i % 250 + 1)),
                        a(name, 3600, "198.51.100." + (i % 250 + 1))));
                assertTrue(harness.cache.bytes() <= maxBytes, "after name " + i + ": " + harness.cache.bytes());
            }
        }
        double stored = harness.stores("positive");
        double oneOff = harness.stores("one_off");
        assertEquals(2 * names, stored + oneOff, "each answer was either kept or turned away");
        assertTrue(oneOff > 0 && oneOff < names, "only first answers, and only once full: " + oneOff);
        long entries = harness.cache.entries();
        assertTrue(entries > 0 && entries < names, entries + " entries");
        assertTrue(harness.cache.bytes() <= maxBytes);
        assertTrue(harness.cache.bytes() > maxBytes / 2, "the bound is used, not emptied: " + harness.cache.bytes());
        // An answer kept in place of its own question's entry pushes nothing out.
        double replacements = names - oneOff;
        assertEquals(stored - replacements - entries, harness.count("dotproxy.cache.evictions"),
                "every entry pushed out is counted");
        long hits = queries.stream().filter(q -> harness.hit(q) != null).count();
        assertEquals(entries, hits, "what is counted is what answers");
        assertEquals((double) harness.cache.bytes(), harness.registry.get("dotproxy.cache.bytes").gauge().value());
    }

    @Test
    void aFullCacheTurnsAwayANameAskedOnceAndKeepsItWhenAskedAgain() {
        Message first = query("first.example.org.");
        harness(CacheHarness.settings().maxBytes(64 * 1024));
        int i = 0;
        while (harness.stores("one_off") == 0) { // fill it until a first answer is turned away
            String name = "filler-" + i++ + ".example.org.";
            Message filler = query(name);
            harness.store(filler, reply(filler, Rcode.NOERROR, a(name, 3600, "192.0.2.1")));
        }
        assertTrue(harness.cache.entries() > 200, "turned away only once full: " + harness.cache.entries());
        harness.store(first, reply(first, Rcode.NOERROR, a("first.example.org.", 3600, "192.0.2.9")));
        assertNull(harness.hit(first), "asked once: not kept");
        assertEquals(2, harness.stores("one_off"));

        harness.store(first, reply(first, Rcode.NOERROR, a("first.example.org.", 3600, "192.0.2.9")));

        assertNotNull(harness.hit(first), "asked again: kept");
        assertTrue(harness.cache.bytes() <= 64 * 1024);
    }
}
