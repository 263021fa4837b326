package io.dotproxy.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.dotproxy.dns.Message;
import io.dotproxy.dns.WireFormatException;
import io.dotproxy.upstream.QueryCallback;
import io.dotproxy.upstream.Upstream;
import io.dotproxy.upstream.UpstreamFailure;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.DefaultEventLoop;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The cache wired as production wires it: a {@link ResponseCache} on a clock the test moves, a
 * {@link CachingUpstream} in front of a {@link RecordingUpstream} whose answers the test writes,
 * on an event loop of its own. Every call goes through the loop, as in the proxy, so the timers
 * of serve-stale and the test's own calls never race.
 */
final class CacheHarness implements AutoCloseable {
    /** Where the clock starts: an arbitrary instant, as {@link System#nanoTime()} has no origin. */
    static final long START = 7_000_000_000_000L;
    private static final Duration WAIT = Duration.ofSeconds(5);

    final ManualClock clock;
    final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    final ResponseCache cache;
    final RecordingUpstream upstream = new RecordingUpstream();
    final DefaultEventLoop loop = new DefaultEventLoop();
    final CachingUpstream caching;

    CacheHarness(ResponseCache.Settings settings) {
        this(settings, START);
    }

    CacheHarness(ResponseCache.Settings settings, long start) {
        clock = new ManualClock(start);
        CacheMetrics metrics = new CacheMetrics(registry);
        cache = new ResponseCache(settings, clock, metrics);
        caching = new CachingUpstream(cache, settings, upstream, loop, Duration.ofSeconds(2), metrics);
    }

    /** The settings tests start from: 1 MiB, no TTL floor, a day's cap, an hour for negative answers, no stale, no prefetch. */
    static Settings settings() {
        return new Settings();
    }

    /** {@link ResponseCache.Settings} with one knob changed at a time. */
    static final class Settings {
        long maxBytes = 1 << 20;
        Duration minTtl = Duration.ZERO;
        Duration maxTtl = Duration.ofDays(1);
        Duration maxNegativeTtl = Duration.ofHours(1);
        Duration maxStale = Duration.ZERO;
        Duration staleAnswerTimeout = Duration.ofMillis(1800);
        int prefetchAfter;

        Settings maxBytes(long value) {
            maxBytes = value;
            return this;
        }

        Settings minTtl(Duration value) {
            minTtl = value;
            return this;
        }

        Settings maxTtl(Duration value) {
            maxTtl = value;
            return this;
        }

        Settings maxNegativeTtl(Duration value) {
            maxNegativeTtl = value;
            return this;
        }

        Settings maxStale(Duration value) {
            maxStale = value;
            return this;
        }

        Settings staleAnswerTimeout(Duration value) {
            staleAnswerTimeout = value;
            return this;
        }

        Settings prefetchAfter(int value) {
            prefetchAfter = value;
            return this;
        }

        ResponseCache.Settings build() {
            return new ResponseCache.Settings(true, maxBytes, minTtl, maxTtl, maxNegativeTtl, maxStale,
                    staleAnswerTimeout, prefetchAfter);
        }
    }

    <T> T onLoop(Callable<T> task) {
        try {
            return loop.submit(task).get(WAIT.toSeconds(), TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new AssertionError(e.getCause());
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    static Message parse(ByteBuf message) {
        try {
            return Message.parse(message);
        } catch (WireFormatException e) {
            throw new AssertionError(e);
        }
    }

    /** The pipeline's local-answer stage: the cache's fresh hit for {@code query}, or null. */
    ByteBuf ask(ByteBuf query) {
        return onLoop(() -> caching.answer(query, parse(query), UnpooledByteBufAllocator.DEFAULT));
    }

    /** {@link #ask} for a dnsjava query: its answer read by dnsjava, or null for a miss. */
    org.xbill.DNS.Message hit(org.xbill.DNS.Message query) {
        ByteBuf answer = ask(Dns.wire(query));
        return answer == null ? null : Dns.read(answer);
    }

    /** The pipeline's forwarding stage: sends {@code query} through the cache to the upstream. */
    Client forward(ByteBuf query) {
        Client client = new Client(query);
        onLoop(() -> {
            caching.query(query, parse(query), System.nanoTime() + Duration.ofSeconds(2).toNanos(), client);
            return null;
        });
        return client;
    }

    Client forward(org.xbill.DNS.Message query) {
        return forward(Dns.wire(query));
    }

    /** A miss as the pipeline handles it: no fresh hit, so forwarded; the upstream answers {@code answer}. */
    org.xbill.DNS.Message fill(org.xbill.DNS.Message query, org.xbill.DNS.Message answer) {
        int sent = upstream.received.size();
        Client client = forward(query);
        assertEquals(sent + 1, upstream.received.size(), "the miss went upstream");
        answer(upstream.last(), answer);
        return client.answer();
    }

    /** Offers {@code answer} to the cache as the answer to {@code query}, as {@link CachingUpstream} does. */
    void store(ByteBuf query, ByteBuf answer) {
        onLoop(() -> {
            Message parsed = parse(query);
            cache.store(Question.key(query, parsed), query, parsed, answer);
            return null;
        });
        answer.release();
    }

    void store(org.xbill.DNS.Message query, org.xbill.DNS.Message answer) {
        store(Dns.wire(query), Dns.wire(answer));
    }

    /** The upstream answers {@code forwarded} with {@code answer}, whose ID it sets to the forwarded query's. */
    void answer(Forwarded forwarded, org.xbill.DNS.Message answer) {
        org.xbill.DNS.Message copy = answer.clone();
        copy.getHeader().setID(forwarded.query().getUnsignedShort(forwarded.query().readerIndex()));
        ByteBuf wire = Dns.wire(copy);
        onLoop(() -> {
            forwarded.callback().onAnswer(wire);
            return null;
        });
    }

    void fail(Forwarded forwarded, UpstreamFailure failure) {
        onLoop(() -> {
            forwarded.callback().onFailure(failure);
            return null;
        });
    }

    void advance(Duration duration) {
        clock.advance(duration);
    }

    /** The value of a counter of the registry, 0 if it has none of that name and tags. */
    double count(String name, String... tags) {
        return registry.find(name).tags(tags).functionCounters().stream().mapToDouble(FunctionCounter::count).sum();
    }

    double stores(String result) {
        return count("dotproxy.cache.stores", "result", result);
    }

    @Override
    public void close() {
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /** A nanosecond clock that moves only when told. */
    static final class ManualClock implements LongSupplier {
        private volatile long now;

        ManualClock(long start) {
            now = start;
        }

        @Override
        public long getAsLong() {
            return now;
        }

        void advance(Duration duration) {
            now += duration.toNanos();
        }
    }

    /** One query the upstream received, with the callback to answer it through. */
    record Forwarded(ByteBuf query, QueryCallback callback) {
        /** The query as dnsjava reads it. */
        org.xbill.DNS.Message message() {
            try {
                return new org.xbill.DNS.Message(ByteBufUtil.getBytes(query));
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
        }
    }

    /** An upstream that answers nothing by itself: it keeps every query for the test to answer. */
    static final class RecordingUpstream implements Upstream {
        final List<Forwarded> received = new CopyOnWriteArrayList<>();

        @Override
        public void query(ByteBuf query, Message parsed, long deadlineNanos, QueryCallback callback) {
            received.add(new Forwarded(query, callback));
        }

        Forwarded last() {
            return received.get(received.size() - 1);
        }

        @Override
        public String name() {
            return "recording";
        }

        @Override
        public void close() {}
    }

    /** A client waiting for its answer: what the pipeline's callback would get. */
    static final class Client implements QueryCallback {
        final ByteBuf query;
        final List<ByteBuf> answers = new CopyOnWriteArrayList<>();
        final List<UpstreamFailure> failures = new CopyOnWriteArrayList<>();

        Client(ByteBuf query) {
            this.query = query;
        }

        @Override
        public void onAnswer(ByteBuf answer) {
            answers.add(answer);
        }

        @Override
        public void onFailure(UpstreamFailure failure) {
            failures.add(failure);
        }

        boolean called() {
            return answers.size() + failures.size() > 0;
        }

        /** The one answer this client got, read by dnsjava (and released). */
        org.xbill.DNS.Message answer() {
            assertEquals(List.of(), failures, "no failure");
            assertEquals(1, answers.size(), "exactly one answer");
            return Dns.read(answers.get(0));
        }
    }
}
