package io.dotproxy.health;

import io.dotproxy.config.ProxyRuntime;
import io.dotproxy.config.Setup;
import io.dotproxy.server.ProxyServer;
import io.dotproxy.upstream.Member;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.Optional;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.HealthCheckResponseBuilder;
import org.eclipse.microprofile.health.Readiness;

/**
 * Ready once the configuration is loaded and both listeners are bound, until a stop begins: from
 * the first moment of a drain it is down with {@code "draining": true}, while the listeners still
 * serve, so that the Service stops sending here before they close.
 * Each upstream's state is shown as data, but upstream reachability deliberately does not change
 * readiness: an upstream outage is seen by every replica at once, and failing readiness would
 * empty the Service, turning quick SERVFAIL answers into client timeouts.
 */
@Readiness
@ApplicationScoped
public class ListenersReadiness implements HealthCheck {
    @Inject
    Setup setup;

    @Override
    public HealthCheckResponse call() {
        Optional<ProxyRuntime> runtime = setup.runtime();
        HealthCheckResponseBuilder response = HealthCheckResponse.named("dns-listeners");
        if (runtime.isEmpty()) {
            return response.down().build();
        }
        for (Member member : runtime.get().group().members()) {
            response.withData("upstream " + member.name(), member.health().state().name());
        }
        ProxyServer server = runtime.get().server();
        if (server.isStopping()) {
            return response.down().withData("draining", true).build();
        }
        if (server.isServing()) {
            // Which settings are in force, so that one can see every replica has taken a change.
            return response.up().withData("port", server.port())
                    .withData("settings-generation", setup.settingsGeneration()).build();
        }
        return response.down().build();
    }
}
