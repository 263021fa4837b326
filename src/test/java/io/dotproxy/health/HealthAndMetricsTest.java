package io.dotproxy.health;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.not;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.dotproxy.config.Setup;
import io.dotproxy.testing.DnsClient;
import io.dotproxy.testing.FakeUpstreamResource;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.io.IOException;
import org.junit.jupiter.api.Test;
import org.xbill.DNS.Message;
import org.xbill.DNS.Rcode;

/** The wired application: health endpoints and the metric names users' dashboards depend on. */
@QuarkusTest
@WithTestResource(FakeUpstreamResource.class)
class HealthAndMetricsTest {
    @Inject
    Setup setup;

    private int dnsPort() {
        return setup.runtime().orElseThrow().server().port();
    }

    @Test
    void readyOnceBothListenersAreBoundAndSaysOnWhichPort() {
        given().when().get("/q/health/ready")
                .then().statusCode(200)
                .body("status", is("UP"))
                .body("checks.find { it.name == 'dns-listeners' }.data.port", is(dnsPort()));
    }

    @Test
    void upstreamsGroupShowsEachUpstreamsStateWithoutTouchingReadiness() {
        given().when().get("/q/health/group/upstreams")
                .then().statusCode(200)
                .body("status", is("UP"))
                .body("checks.find { it.name == 'dot-upstreams' }.data.plain-fallback-in-use", is(false));
        given().when().get("/q/health/ready")
                .then().statusCode(200)
                .body(containsString("upstream 127.0.0.1:"));
    }

    @Test
    void liveWhileTheListenersAreOpen() {
        given().when().get("/q/health/live")
                .then().statusCode(200)
                .body("status", is("UP"))
                .body("checks.find { it.name == 'dns-listeners' }.status", is("UP"));
    }

    @Test
    void queriesAnsweredInTestModeAndCountedUnderPinnedNames() throws IOException {
        Message udp = DnsClient.udp(dnsPort(), DnsClient.query("metrics-probe.example."));
        Message tcp = DnsClient.tcp(dnsPort(), DnsClient.query("metrics-probe.example."));
        assertEquals(Rcode.NOERROR, udp.getRcode());
        assertEquals(Rcode.NOERROR, tcp.getRcode());
        DnsClient.udpRaw(dnsPort(), new byte[] {1, 2, 3}, 200);

        String upstream = "upstream=\"127.0.0.1:";
        given().when().get("/q/metrics")
                .then().statusCode(200)
                .body(containsString("dotproxy_server_queries_total{proto=\"udp\"}"))
                .body(containsString("dotproxy_server_queries_total{proto=\"tcp\"}"))
                .body(containsString("dotproxy_server_responses_total{proto=\"udp\",rcode=\"NOERROR\"}"))
                .body(containsString("dotproxy_server_responses_total{proto=\"tcp\",rcode=\"SERVFAIL\"}"))
                .body(containsString("dotproxy_server_dropped_total{proto=\"udp\",result=\"short\"} 1.0"))
                .body(containsString("dotproxy_server_errors_total{proto=\"udp\",result=\"upstream\"}"))
                .body(containsString("dotproxy_server_truncated_total{proto=\"udp\"}"))
                .body(containsString("dotproxy_server_connections{proto=\"tcp\"}"))
                .body(containsString("dotproxy_server_in_flight 0.0"))
                .body(containsString("dotproxy_server_extended_errors_total{result=\"no_reachable_authority\"}"))
                .body(containsString("dotproxy_server_dropped_total{proto=\"udp\",result=\"not_admitted\"}"))
                .body(containsString("dotproxy_upstream_rtt_seconds_bucket{" + upstream))
                .body(containsString("dotproxy_upstream_rtt_seconds_count{" + upstream))
                .body(containsString("dotproxy_upstream_requests_total{result=\"answered\"," + upstream))
                .body(containsString("dotproxy_upstream_requests_total{result=\"timeout\"," + upstream))
                .body(containsString("dotproxy_upstream_errors_total{result=\"tls\"," + upstream))
                .body(containsString("dotproxy_upstream_errors_total{result=\"pin\"," + upstream))
                .body(containsString("dotproxy_upstream_handshakes_total{" + upstream))
                .body(containsString("dotproxy_upstream_connections{" + upstream))
                .body(containsString("dotproxy_upstream_state{state=\"up\"," + upstream))
                .body(containsString("dotproxy_upstream_in_flight{" + upstream))
                .body(containsString("dotproxy_upstream_handshakes_resumed_total{" + upstream))
                .body(containsString("dotproxy_upstream_probes_total{result=\"answered\"," + upstream))
                .body(containsString("dotproxy_upstream_certificate_days_left{" + upstream))
                .body(containsString("dotproxy_upstream_hedges_total"))
                .body(containsString("dotproxy_upstream_fallback_queries_total"))
                .body(not(containsString("metrics-probe")));
    }
}
