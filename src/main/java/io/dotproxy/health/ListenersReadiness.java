package io.dotproxy.health;

import io.dotproxy.config.Setup;
import io.dotproxy.server.ProxyServer;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.Optional;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.HealthCheckResponseBuilder;
import org.eclipse.microprofile.health.Readiness;

/**
 * Ready once the configuration is loaded and both listeners are bound, until shutdown begins.
 * Upstream reachability is deliberately not part of readiness: an upstream outage seen by every
 * replica would empty the Service, and clients would get timeouts instead of SERVFAIL.
 */
@Readiness
@ApplicationScoped
public class ListenersReadiness implements HealthCheck {
    @Inject
    Setup setup;

    @Override
    public HealthCheckResponse call() {
        Optional<ProxyServer> server = setup.server();
        HealthCheckResponseBuilder response = HealthCheckResponse.named("dns-listeners");
        if (server.isPresent() && server.get().isServing()) {
            return response.up().withData("port", server.get().port()).build();
        }
        return response.down().build();
    }
}
