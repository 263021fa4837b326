package io.dotproxy.health;

import io.dotproxy.config.ProxyRuntime;
import io.dotproxy.config.Setup;
import io.dotproxy.upstream.Member;
import io.dotproxy.upstream.UpstreamGroup;
import io.smallrye.health.api.HealthGroup;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.HealthCheckResponseBuilder;

/**
 * The health group {@code /q/health/group/upstreams}: UP while at least one DoT upstream is up,
 * with each upstream's circuit state as data. For dashboards and alerts, not for probes (see
 * {@link ListenersReadiness} for why). It only reads state; it sends nothing.
 */
@HealthGroup("upstreams")
@ApplicationScoped
public class UpstreamsHealth implements HealthCheck {
    @Inject
    Setup setup;

    @Override
    public HealthCheckResponse call() {
        HealthCheckResponseBuilder response = HealthCheckResponse.named("dot-upstreams");
        ProxyRuntime runtime = setup.runtime().orElse(null);
        if (runtime == null) {
            return response.down().build();
        }
        UpstreamGroup group = runtime.group(); // the first lane's: the circuits are every lane's
        boolean anyUp = false;
        for (Member member : group.members()) {
            response.withData(member.name(), member.health().state().name());
            anyUp |= member.health().isUp();
        }
        response.withData("plain-fallback-in-use", runtime.usingFallback());
        return response.status(anyUp).build();
    }
}
