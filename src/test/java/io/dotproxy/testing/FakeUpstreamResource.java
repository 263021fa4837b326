package io.dotproxy.testing;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** Starts a {@link FakeUpstream} for a {@code @QuarkusTest} and points the proxy at it. */
public final class FakeUpstreamResource implements QuarkusTestResourceLifecycleManager {
    private FakeUpstream upstream;

    @Override
    public Map<String, String> start() {
        TestCa ca = TestCa.create();
        upstream = FakeUpstream.start(ca.issue(List.of(ProxyHarness.TLS_NAME), List.of()), FakeUpstream.answering());
        try {
            Path caFile = ca.writePem(Files.createTempFile("quarkus-test-ca", ".pem"));
            return Map.of(
                    "dotproxy.upstreams", "127.0.0.1:" + upstream.port() + "#" + ProxyHarness.TLS_NAME,
                    "dotproxy.tls.ca-file", caFile.toString(),
                    "dotproxy.listen.host", "127.0.0.1");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void stop() {
        if (upstream != null) {
            upstream.close();
        }
    }
}
