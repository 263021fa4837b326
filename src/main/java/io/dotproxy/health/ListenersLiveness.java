package io.dotproxy.health;

import io.dotproxy.config.Setup;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Liveness;

/** Alive unless a listener that was bound has closed on its own: then only a restart helps. */
@Liveness
@ApplicationScoped
public class ListenersLiveness implements HealthCheck {
    @Inject
    Setup setup;

    @Override
    public HealthCheckResponse call() {
        boolean failed = setup.runtime().map(runtime -> runtime.server().hasFailed()).orElse(false);
        return HealthCheckResponse.named("dns-listeners").status(!failed).build();
    }
}
