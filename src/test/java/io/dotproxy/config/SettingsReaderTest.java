package io.dotproxy.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.dotproxy.guard.AddressSet;
import io.dotproxy.guard.Guard;
import io.dotproxy.guard.RateLimiter;
import io.dotproxy.upstream.DotResolver;
import io.dotproxy.upstream.UpstreamAddress;
import io.smallrye.config.ConfigValidationException;
import io.smallrye.config.PropertiesConfigSource;
import io.smallrye.config.SmallRyeConfig;
import java.net.InetAddress;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The configuration checks, table-driven: what is accepted, and the one line for what is not. */
class SettingsReaderTest {
    /** The mapping as Quarkus builds it (with its duration syntax), over these properties only. */
    private static ProxyConfig config(Map<String, String> properties) {
        SmallRyeConfig config = SettingsRereader.mapping()
                .withSources(new PropertiesConfigSource(properties, "test", 500))
                .build();
        return config.getConfigMapping(ProxyConfig.class);
    }

    private static ProxySettings read(Map<String, String> properties) {
        return SettingsReader.read(config(properties), Optional.empty());
    }

    @Test
    void settingsReadFromTheSamePropertiesAreEqualAndFromAnotherUpstreamListAreNot() {
        Map<String, String> properties = Map.of(
                "dotproxy.upstreams", "127.0.0.1:8853#dns.test,127.0.0.2:8853#dns.test",
                "dotproxy.timeout", "1500ms",
                "dotproxy.upstream.spki-pins", "dns.test=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "dotproxy.fallback", "127.0.0.1:5300");
        ProxySettings first = read(properties);
        ProxySettings second = read(new HashMap<>(properties));
        assertEquals(first, second);
        assertEquals(first.hashCode(), second.hashCode());
        assertEquals(Duration.ofMillis(1500), first.pipeline().timeout());
        assertEquals(Set.of("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), first.forwarding().dot().get(1).spkiPins());

        Map<String, String> otherOrder = new HashMap<>(properties);
        otherOrder.put("dotproxy.upstreams", "127.0.0.2:8853#dns.test,127.0.0.1:8853#dns.test");
        assertNotEquals(first, read(otherOrder), "order is preference: another list");
        Map<String, String> otherList = new HashMap<>(properties);
        otherList.put("dotproxy.upstreams", "127.0.0.1:8853#dns.test");
        ProxySettings fewer = read(otherList);
        assertNotEquals(first, fewer);
        assertEquals(first.listen(), fewer.listen(), "only the upstream side differs");
        assertEquals(first.pipeline(), fewer.pipeline());
    }

    @Test
    void defaultsAreTheCloudflareResolversWithTheStrictProfile() {
        ProxySettings defaults = read(Map.of());
        assertEquals(List.of("1.1.1.1:853#cloudflare-dns.com", "1.0.0.1:853#cloudflare-dns.com"),
                defaults.forwarding().dot().stream().map(DotResolver::toString).toList());
        assertEquals(List.of(), defaults.forwarding().fallback(), "no clear text unless asked for");
        assertEquals("fastest", defaults.forwarding().policy());
        assertEquals(53, defaults.listen().port());
        assertTrue(defaults.pipeline().stripClientSubnet(), "ECS stripped unless asked to pass");
        assertFalse(read(Map.of("dotproxy.ecs", "pass")).pipeline().stripClientSubnet());
        assertEquals(Duration.ofSeconds(5), defaults.listen().drainDelay(), "time for endpoints to catch up on SIGTERM");
        assertEquals(Duration.ZERO, read(Map.of("dotproxy.shutdown.drain-delay", "0s")).listen().drainDelay(),
                "0s: stop accepting at once");
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
        "dotproxy.timeout                | abc  | expected a duration such as 2s, 500ms or 1m",
        "dotproxy.upstream.pool-size     | many | expected a whole number",
        "dotproxy.hedge.max-share        | x    | expected a number such as 0.05",
        "dotproxy.upstream.idle-timeout  | 5 s  | expected a duration such as 2s, 500ms or 1m",
        "dotproxy.listen.port            | 53.5 | expected a whole number",
    })
    void valuesTheLibraryCannotConvertStopWithOneLineNamingTheSettingTheValueAndTheForm(String setting, String value,
                                                                                       String allowed) {
        ConfigValidationException invalid = assertThrows(ConfigValidationException.class,
                () -> config(Map.of(setting, value)));
        assertEquals(List.of("Invalid configuration: " + setting + "=" + value + ": " + allowed),
                ConfigProblems.describe(invalid));
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
        "dotproxy.listen.port                   | 70000 | expected a whole number from 0 to 65535",
        "dotproxy.timeout                       | 0s    | expected a duration from 10ms to 1m",
        "dotproxy.tcp.idle-timeout              | 50ms  | expected a duration from 100ms to 1h",
        "dotproxy.tcp.max-connections           | 0     | expected a whole number from 1 to 1000000",
        "dotproxy.udp.max-payload               | 511   | expected a whole number from 512 to 65535",
        "dotproxy.upstream.attempt-timeout      | 61s   | expected a duration from 10ms to 1m",
        "dotproxy.upstream.idle-timeout         | 2h    | expected a duration from 100ms to 1h",
        "dotproxy.upstream.max-in-flight        | 65536 | expected a whole number from 1 to 65535",
        "dotproxy.upstream.pool-size            | 65    | expected a whole number from 1 to 64",
        "dotproxy.upstream.handshakes-per-second | 0    | expected a number above 0 and at most 1000",
        "dotproxy.upstream.handshake-burst      | 0     | expected a whole number from 1 to 1000",
        "dotproxy.hedge.min-delay               | 61s   | expected a duration from 0s to 1m",
        "dotproxy.hedge.max-share               | 1.5   | expected a share from 0 to 1",
        "dotproxy.all-down                      | maybe | expected one of try, servfail",
        "dotproxy.policy                        | best  | expected one of fastest, failover, round-robin, random",
        "dotproxy.retry-on                      | nxdomain | expected one of servfail, refused, none",
        "dotproxy.max-in-flight                 | 0     | expected a whole number from 1 to 1000000",
        "dotproxy.refuse                        | ignore | expected one of answer, drop",
        "dotproxy.ecs                           | keep  | expected one of strip, pass",
        "dotproxy.rate-limit.qps                | -1    | expected a number from 0 (off) to 1000000",
        "dotproxy.shutdown.drain-delay          | -1s   | expected a duration from 0s to 10m",
        "dotproxy.shutdown.drain-delay          | 11m   | expected a duration from 0s to 10m",
    })
    void readingChecksEveryRangeUnderItsOwnKey(String setting, String value, String allowed) {
        ConfigError error = assertThrows(ConfigError.class, () -> read(Map.of(setting, value)));
        assertTrue(error.getMessage().startsWith("Invalid configuration: " + setting + "="), error.getMessage());
        assertTrue(error.getMessage().contains(allowed), error.getMessage());
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
        "dotproxy.rate-limit.burst       | 0   | expected a whole number from 1 to 1000000",
        "dotproxy.rate-limit.block-after | 2h  | expected a duration from 0s to 1h",
        "dotproxy.rate-limit.block-time  | 0s  | expected a duration from 1s to 1d",
        "dotproxy.rate-limit.slip        | 101 | expected a whole number from 0 to 100",
        "dotproxy.rate-limit.ipv4-prefix | 33  | expected a whole number from 1 to 32",
        "dotproxy.rate-limit.ipv6-prefix | 65  | expected a whole number from 1 to 64",
        "dotproxy.rate-limit.max-clients | 0   | expected a whole number from 1 to 10000000",
    })
    void rateLimitRangesAreCheckedOnceItIsOn(String setting, String value, String allowed) {
        assertTrue(read(Map.of(setting, value)).guard().rateLimit().isEmpty(), "off: nothing of it is used");
        ConfigError error = assertThrows(ConfigError.class,
                () -> read(Map.of("dotproxy.rate-limit.qps", "50", setting, value)));
        assertEquals("Invalid configuration: " + setting + "=" + value + ": " + allowed,
                error.getMessage().replaceAll(", such as 2s or 500ms$", ""));
    }

    @Test
    void theGuardAdmitsPrivateNetworksAndLimitsNoRateByDefault() throws Exception {
        ProxySettings defaults = read(Map.of());
        Guard.Settings guard = defaults.guard();
        assertEquals(AddressSet.parse(AddressSet.PRIVATE_NETWORKS), guard.allow());
        assertTrue(guard.allow().contains(InetAddress.getByName("10.1.2.3")));
        assertFalse(guard.allow().contains(InetAddress.getByName("8.8.8.8")), "the internet is refused");
        assertFalse(guard.dropRefusedUdp(), "refused clients get an answer");
        assertEquals(Optional.empty(), guard.rateLimit(), "rate limits are off");
        assertEquals(10_000, defaults.pipeline().maxInFlight());

        RateLimiter.Settings limit = read(Map.of("dotproxy.rate-limit.qps", "50", "dotproxy.refuse", "drop",
                "dotproxy.rate-limit.exempt", "10.0.0.0/8")).guard().rateLimit().orElseThrow();
        assertEquals(new RateLimiter.Settings(50, 100, Duration.ofSeconds(2), Duration.ofSeconds(60), 2, 32, 64, 100_000),
                limit, "a burst of twice the rate unless set");
    }

    @Test
    void aBadAddressInTheAllowListIsNamed() {
        ConfigError error = assertThrows(ConfigError.class, () -> read(Map.of("dotproxy.allow", "10.0.0.0/8,10.0.0.0/33")));
        assertTrue(error.getMessage().startsWith("Invalid configuration: dotproxy.allow=10.0.0.0/8,10.0.0.0/33: "),
                error.getMessage());
        assertTrue(error.getMessage().contains("10.0.0.0/33"), error.getMessage());
        assertTrue(error.getMessage().endsWith("expected CIDRs such as 10.0.0.0/8,fd00::/8 or single addresses"),
                error.getMessage());
        ConfigError exempt = assertThrows(ConfigError.class, () -> read(Map.of("dotproxy.rate-limit.exempt", "dns.example")));
        assertTrue(exempt.getMessage().startsWith("Invalid configuration: dotproxy.rate-limit.exempt=dns.example: "),
                exempt.getMessage());
    }

    @Test
    void pinsAreKeyedByTheUpstreamsTlsNameHoweverEitherIsWritten() {
        String pin = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        ProxySettings settings = read(Map.of(
                "dotproxy.upstreams", "127.0.0.1:8853#DNS.Test.,[::1]:8853#0:0:0:0:0:0:0:1",
                "dotproxy.upstream.spki-pins", "dns.test=" + pin + ",::1=" + pin));
        assertEquals(Set.of(pin), settings.forwarding().dot().get(0).spkiPins());
        assertEquals(Set.of(pin), settings.forwarding().dot().get(1).spkiPins());
    }

    @Test
    void aPinForANameNoUpstreamHasStopsStartUpRatherThanLeaveItsUpstreamUnpinned() {
        String pin = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        ConfigError typo = assertThrows(ConfigError.class, () -> read(Map.of(
                "dotproxy.upstreams", "127.0.0.1:8853#dns.test",
                "dotproxy.upstream.spki-pins", "dns.tset=" + pin)));
        assertTrue(typo.getMessage().startsWith("Invalid configuration: dotproxy.upstream.spki-pins=dns.tset="), typo.getMessage());
        assertTrue(typo.getMessage().contains("no upstream has the TLS name dns.tset"), typo.getMessage());
        // DoT_HOST without a TLS name replaces the list: the pin for the old name no longer applies.
        ConfigError replaced = assertThrows(ConfigError.class, () -> SettingsReader.read(config(Map.of(
                "dotproxy.upstream.spki-pins", "cloudflare-dns.com=" + pin)), Optional.of("1.1.1.1")));
        assertTrue(replaced.getMessage().contains("no upstream has the TLS name cloudflare-dns.com"), replaced.getMessage());
    }

    @Test
    void everyValueTheLibraryCannotConvertGetsItsOwnLine() {
        ConfigValidationException invalid = assertThrows(ConfigValidationException.class,
                () -> config(Map.of("dotproxy.timeout", "abc", "dotproxy.upstream.pool-size", "many")));
        assertEquals(Set.of("Invalid configuration: dotproxy.timeout=abc: expected a duration such as 2s, 500ms or 1m",
                        "Invalid configuration: dotproxy.upstream.pool-size=many: expected a whole number"),
                Set.copyOf(ConfigProblems.describe(invalid)));
    }


    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "1.1.1.1                                       | 1.1.1.1:853#1.1.1.1",
        "1.1.1.1:853#cloudflare-dns.com                | 1.1.1.1:853#cloudflare-dns.com",
        "9.9.9.9:8853                                  | 9.9.9.9:8853#9.9.9.9",
        "' 127.0.0.1:8853#dns.test '                   | 127.0.0.1:8853#dns.test",
        "[2606:4700:4700::1111]:853#cloudflare-dns.com | [2606:4700:4700::1111]:853#cloudflare-dns.com",
        "[::1]                                         | [::1]:853#::1",
        "2606:4700:4700::1111                          | [2606:4700:4700::1111]:853#2606:4700:4700::1111",
        "localhost:8853                                | 127.0.0.1:8853#localhost",
    })
    void acceptedUpstreams(String spec, String normalized) {
        List<UpstreamAddress> parsed = SettingsReader.upstreams(List.of(spec), Optional.empty());
        assertEquals(normalized, parsed.get(0).toString());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
        "1.1.1.1:99999                | port '99999' is not a number from 1 to 65535",
        "1.1.1.1:dot                  | port 'dot' is not a number",
        "1.1.1.1:853#                 | TLS name '' is not a host name",
        "1.1.1.1:853#bad name         | TLS name 'bad name'",
        "[::1                         | '[' without ']'",
        "[::1]853                     | expected ':port' after ']'",
        "300.1.1.1                    | '300.1.1.1' is not an IP address or host name",
        "\"\"                         | is not an IP address or host name",
    })
    void rejectedUpstreamsNameTheSettingAndTheForm(String spec, String reason) {
        ConfigError error = assertThrows(ConfigError.class, () -> SettingsReader.upstreams(List.of(spec), Optional.empty()));
        assertTrue(error.getMessage().startsWith("Invalid configuration: dotproxy.upstreams="), error.getMessage());
        assertTrue(error.getMessage().contains(reason), error.getMessage());
        assertTrue(error.getMessage().contains("expected address[:port][#tls-name]"), error.getMessage());
        assertEquals(1, error.getMessage().lines().count(), "one line");
        assertEquals(0, error.getStackTrace().length, "no stack trace for a user error");
    }

    @Test
    void dotHostReplacesTheUpstreamList() {
        List<UpstreamAddress> parsed = SettingsReader.upstreams(
                List.of("1.1.1.1:853#cloudflare-dns.com", "1.0.0.1:853#cloudflare-dns.com"),
                Optional.of("9.9.9.9#dns.quad9.net"));
        assertEquals(1, parsed.size());
        assertEquals("9.9.9.9:853#dns.quad9.net", parsed.get(0).toString());
    }

    @Test
    void badDotHostIsReportedUnderItsOwnName() {
        ConfigError error = assertThrows(ConfigError.class,
                () -> SettingsReader.upstreams(List.of("1.1.1.1"), Optional.of("1.1.1.1:0")));
        assertTrue(error.getMessage().startsWith("Invalid configuration: DoT_HOST=1.1.1.1:0"), error.getMessage());
    }

    @Test
    void anUpstreamListedTwiceIsRefusedSinceItWouldShareOneCircuitAndOneSetOfMeters() {
        ConfigError error = assertThrows(ConfigError.class,
                () -> SettingsReader.upstreams(List.of("1.1.1.1#one.example", "1.0.0.1", "1.1.1.1:853#one.example"), Optional.empty()));
        assertTrue(error.getMessage().contains("'1.1.1.1:853#one.example' is listed twice"), error.getMessage());
        // The same address under another TLS name is another upstream (its own meters and circuit).
        assertEquals(2, SettingsReader.upstreams(List.of("1.1.1.1#one.example", "1.1.1.1#two.example"), Optional.empty()).size());
    }

    @Test
    void blankDotHostIsIgnored() {
        assertEquals(2, SettingsReader.upstreams(List.of("1.1.1.1", "1.0.0.1"), Optional.of(" ")).size());
    }

    @ParameterizedTest
    @CsvSource({"::, ::", "0.0.0.0, 0.0.0.0", "127.0.0.1, 127.0.0.1", "[::1], ::1"})
    void acceptedListenHosts(String host, String bound) {
        assertEquals(bound, SettingsReader.listenHost(host));
    }

    @Test
    void listenHostMustBeAnAddress() {
        ConfigError error = assertThrows(ConfigError.class, () -> SettingsReader.listenHost("example.com"));
        assertEquals("Invalid configuration: dotproxy.listen.host=example.com: expected an IP address of this machine,"
                + " :: for every address or 0.0.0.0 for every IPv4 address", error.getMessage());
    }

    @Test
    void numbersAndDurationsOutsideTheirRangeAreRejected() {
        assertEquals("Invalid configuration: dotproxy.listen.port=70000: expected a whole number from 0 to 65535",
                assertThrows(ConfigError.class, () -> SettingsReader.range("dotproxy.listen.port", 70000, 0, 65535)).getMessage());
        ConfigError timeout = assertThrows(ConfigError.class, () -> SettingsReader.positive("dotproxy.timeout", Duration.ZERO,
                Duration.ofMillis(10), Duration.ofSeconds(60)));
        assertTrue(timeout.getMessage().startsWith("Invalid configuration: dotproxy.timeout=0s: expected a duration from 10ms to 1m"),
                timeout.getMessage());
        assertEquals(Duration.ofSeconds(2), SettingsReader.positive("dotproxy.timeout", Duration.ofSeconds(2),
                Duration.ofMillis(10), Duration.ofSeconds(60)));
    }

    @Test
    void fallbackIsPlainDnsOnPort53AndNeverTheDotPort() {
        assertEquals("/9.9.9.9:53", SettingsReader.fallback(List.of("9.9.9.9")).get(0).toString());
        assertEquals("/127.0.0.1:5300", SettingsReader.fallback(List.of("127.0.0.1:5300")).get(0).toString());
        ConfigError dotPort = assertThrows(ConfigError.class, () -> SettingsReader.fallback(List.of("9.9.9.9:853")));
        assertTrue(dotPort.getMessage().startsWith("Invalid configuration: dotproxy.fallback=9.9.9.9:853: port 853 is reserved"),
                dotPort.getMessage());
        ConfigError named = assertThrows(ConfigError.class, () -> SettingsReader.fallback(List.of("9.9.9.9#dns.quad9.net")));
        assertTrue(named.getMessage().contains("has no TLS name"), named.getMessage());
    }

    @Test
    void policyRetryAndPinsAreChecked() {
        assertEquals("Invalid configuration: dotproxy.policy=fastests: expected one of fastest, failover, round-robin, random",
                assertThrows(ConfigError.class, () -> SettingsReader.policy("fastests")).getMessage());
        assertEquals(Set.of("servfail", "refused"), SettingsReader.retryOn(List.of("servfail", " REFUSED")));
        assertEquals(Set.of("none"), SettingsReader.retryOn(List.of("none")));
        assertThrows(ConfigError.class, () -> SettingsReader.retryOn(List.of("none", "servfail")));
        assertThrows(ConfigError.class, () -> SettingsReader.retryOn(List.of("nxdomain")));
        String pin = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        assertEquals(Map.of("dns.example", Set.of(pin)),
                SettingsReader.spkiPins(List.of("DNS.example=" + pin)));
        ConfigError badPin = assertThrows(ConfigError.class, () -> SettingsReader.spkiPins(List.of("dns.example=abc")));
        assertTrue(badPin.getMessage().startsWith("Invalid configuration: dotproxy.upstream.spki-pins=dns.example=abc: expected tls-name=base64"),
                badPin.getMessage());
        assertEquals(0.05, SettingsReader.share("dotproxy.hedge.max-share", 0.05));
        assertThrows(ConfigError.class, () -> SettingsReader.share("dotproxy.hedge.max-share", 1.5));
    }

    @Test
    void caFileMustBeReadable() {
        ConfigError error = assertThrows(ConfigError.class, () -> SettingsReader.caFile(Optional.of("/no/such/ca.pem")));
        assertEquals("Invalid configuration: dotproxy.tls.ca-file=/no/such/ca.pem: expected a readable PEM file of CA certificates",
                error.getMessage());
        assertEquals(Optional.empty(), SettingsReader.caFile(Optional.of("")));
    }
}
