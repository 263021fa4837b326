package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The committed manifests in deploy/ are what the build generates, with both DNS ports. */
class ManifestsIT {
    private static final Path GENERATED = Path.of("target", "kubernetes", "kubernetes.yml");
    private static final Path COMMITTED = Path.of("deploy", "kubernetes.yml");

    @Test
    void committedManifestsMatchTheGeneratedOnes() throws Exception {
        assertEquals(Files.readString(GENERATED), Files.readString(COMMITTED),
                "deploy/kubernetes.yml is stale: cp " + GENERATED + " " + COMMITTED);
    }

    @Test
    void serviceCarriesDnsOverUdpAndTcpOnPort53() throws Exception {
        String manifests = Files.readString(COMMITTED);
        assertTrue(manifests.matches("(?s).*name: dns-udp\\s+port: 53\\s+protocol: UDP\\s+targetPort: 5353.*"), manifests);
        assertTrue(manifests.matches("(?s).*name: dns-tcp\\s+port: 53\\s+protocol: TCP\\s+targetPort: 5353.*"), manifests);
        assertTrue(manifests.contains("path: /q/health/ready"), manifests);
    }
}
