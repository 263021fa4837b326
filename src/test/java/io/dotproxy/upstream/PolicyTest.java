package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.dns.Message;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.channel.DefaultEventLoop;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class PolicyTest {
    private static final DefaultEventLoop LOOP = new DefaultEventLoop();

    @AfterAll
    static void stop() {
        LOOP.shutdownGracefully();
    }

    /** Members whose smoothed round-trip times are these (in milliseconds; 0 = no sample yet). */
    static List<Member> members(long... rttMillis) {
        List<Member> members = new ArrayList<>();
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        for (int i = 0; i < rttMillis.length; i++) {
            String name = "m" + i;
            Upstream upstream = new Upstream() {
                @Override
                public void query(ByteBuf q, Message p, long d, QueryCallback c) {
                    c.onFailure(UpstreamFailure.UNAVAILABLE);
                }

                @Override
                public String name() {
                    return name;
                }

                @Override
                public void close() {}
            };
            UpstreamMetrics metrics = new UpstreamMetrics(registry, name);
            Member member = new Member(upstream, new UpstreamHealth(name, LOOP.next(), Duration.ofSeconds(1),
                    Duration.ofMinutes(5), metrics), Duration.ofSeconds(1));
            if (rttMillis[i] > 0) {
                member.latency().record(Duration.ofMillis(rttMillis[i]).toNanos());
            }
            members.add(member);
        }
        return members;
    }

    @Test
    void failoverAlwaysTakesTheMostPreferred() {
        List<Member> members = members(50, 1, 1);
        for (int i = 0; i < 100; i++) {
            assertEquals(0, new Policy.Failover().pick(members));
        }
    }

    @Test
    void roundRobinTakesEachInTurn() {
        Policy policy = new Policy.RoundRobin();
        List<Member> members = members(1, 1, 1);
        List<Integer> picks = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            picks.add(policy.pick(members));
        }
        assertEquals(List.of(0, 1, 2, 0, 1, 2), picks);
    }

    @Test
    void randomReachesEveryMember() {
        List<Member> members = members(1, 1, 1, 1);
        Set<Integer> seen = new HashSet<>();
        for (int i = 0; i < 1000; i++) {
            seen.add(new Policy.Random().pick(members));
        }
        assertEquals(Set.of(0, 1, 2, 3), seen);
    }

    @Test
    void fastestPrefersTheLowestSmoothedRttButStillExplores() {
        List<Member> members = members(40, 5, 20);
        int[] picks = new int[3];
        int trials = 20_000;
        for (int i = 0; i < trials; i++) {
            picks[new Policy.Fastest().pick(members)]++;
        }
        double fastestShare = picks[1] / (double) trials;
        assertTrue(fastestShare > 0.93 && fastestShare < 0.99, "fastest chosen " + fastestShare);
        assertTrue(picks[0] > 0 && picks[2] > 0, "slower members still get a few queries");
    }

    @Test
    void policiesAreNamedAsInTheConfiguration() {
        assertEquals(Policy.Fastest.class, Policy.named("fastest").getClass());
        assertEquals(Policy.Failover.class, Policy.named("failover").getClass());
        assertEquals(Policy.RoundRobin.class, Policy.named("round-robin").getClass());
        assertEquals(Policy.Random.class, Policy.named("random").getClass());
        assertThrows(IllegalArgumentException.class, () -> Policy.named("fastests"));
    }
}
