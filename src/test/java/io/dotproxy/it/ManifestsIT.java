package io.dotproxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.dotproxy.testing.Manifests;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.HTTPGetAction;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.IntOrString;
import io.fabric8.kubernetes.api.model.LabelSelector;
import io.fabric8.kubernetes.api.model.LabelSelectorRequirement;
import io.fabric8.kubernetes.api.model.PodSecurityContext;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.SecurityContext;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServicePort;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.fabric8.openshift.api.model.monitoring.v1.ServiceMonitor;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The manifests in deploy/: what the build generates, every file read strictly (fabric8's model,
 * unknown kinds and fields fail), and the facts a replicated cluster DNS service needs: DNS over
 * UDP and TCP on 53 to the container's port, several replicas that roll one at a time, probes on
 * the paths the proxy serves, the "restricted" Pod Security Standard, a PodDisruptionBudget over
 * the Deployment's pods, the ConfigMap mounted as a directory where the proxy reads it.
 */
class ManifestsIT {
    private static final Path DEPLOY = Path.of("deploy");
    private static final Path GENERATED = Path.of("target", "kubernetes", "kubernetes.yml");
    private static final Path COMMITTED = DEPLOY.resolve("kubernetes.yml");
    private static final String NAME = "dot-proxy";
    /** The proxy's HTTP port (quarkus.http.port in application.properties): health and metrics. */
    private static final int HTTP_PORT = 8080;

    private static Manifests manifests;
    private static Deployment deployment;
    private static PodSpec pod;
    private static Container container;

    @BeforeAll
    static void read() throws IOException {
        manifests = Manifests.read(List.of(COMMITTED));
        deployment = manifests.get(Deployment.class, NAME);
        pod = deployment.getSpec().getTemplate().getSpec();
        assertEquals(1, pod.getContainers().size(), "one container");
        container = pod.getContainers().get(0);
    }

    @Test
    void committedManifestsMatchTheGeneratedOnes() throws Exception {
        assertEquals(Files.readString(GENERATED), Files.readString(COMMITTED),
                "deploy/kubernetes.yml is stale: cp " + GENERATED + " " + COMMITTED);
    }

    /**
     * {@code kubectl apply -f deploy} reads the *.yaml, *.yml and *.json files directly in deploy/
     * (not in folders below it): those must be manifests, so the only one is kubernetes.yml.
     */
    @Test
    void kubectlApplyMinusFReadsTheManifestsOnly() throws IOException {
        List<Path> read;
        try (Stream<Path> listing = Files.list(DEPLOY)) {
            read = listing.filter(file -> Files.isRegularFile(file) && file.toString().matches(".*\\.(ya?ml|json)")).toList();
        }
        assertEquals(List.of(COMMITTED), read);
        assertTrue(Files.isRegularFile(DEPLOY.resolve("Kustomization")), "kubectl apply -k deploy");
    }

    /** Every manifest in deploy/, the optional ServiceMonitor too, is of a known kind with known fields only. */
    @Test
    void everyManifestInDeployReadsStrictly() throws IOException {
        List<Path> files;
        try (Stream<Path> listing = Files.walk(DEPLOY)) {
            files = listing.filter(file -> file.toString().matches(".*\\.ya?ml")).sorted().toList();
        }
        assertEquals(List.of(COMMITTED, DEPLOY.resolve("monitoring").resolve("servicemonitor.yaml")), files);
        Manifests all = Manifests.read(files);
        assertEquals(Set.of("ConfigMap/" + NAME, "Deployment/" + NAME, "PodDisruptionBudget/" + NAME,
                "Service/" + NAME, "ServiceMonitor/" + NAME), all.all().stream().map(ManifestsIT::id).collect(Collectors.toSet()));

        ServiceMonitor monitor = all.get(ServiceMonitor.class, NAME);
        assertTrue(selects(monitor.getSpec().getSelector(), manifests.get(Service.class, NAME).getMetadata().getLabels()),
                "the ServiceMonitor selects the Service");
        assertEquals("http", monitor.getSpec().getEndpoints().get(0).getPort());
        assertEquals("/q/metrics", monitor.getSpec().getEndpoints().get(0).getPath());
    }

    /** The strict reader is strict: a misspelt field, a string for a number, a key twice, an unknown kind. */
    @Test
    void theStrictReaderRefusesWhatAnApiServerWould() throws IOException {
        String budget = """
                apiVersion: policy/v1
                kind: PodDisruptionBudget
                metadata:
                  name: x
                spec:
                  maxUnavailable: 1
                  selector:
                    matchLabels:
                      app: x
                """;
        assertEquals(1, Manifests.parse(budget).all().size());
        assertThrows(IOException.class, () -> Manifests.parse(budget.replace("maxUnavailable", "maxUnavailabel")));
        assertThrows(IOException.class, () -> Manifests.parse(budget.replace("  maxUnavailable: 1\n",
                "  maxUnavailable: 1\n  maxUnavailable: 2\n")));
        assertThrows(IOException.class, () -> Manifests.parse(budget.replace("kind: PodDisruptionBudget", "kind: DisruptionBudget")));
        assertThrows(IOException.class, () -> Manifests.parse("""
                apiVersion: apps/v1
                kind: Deployment
                metadata:
                  name: x
                spec:
                  replicas: "3"
                """));
    }

    @Test
    void serviceCarriesDnsOverUdpAndTcpOn53ToTheContainersPort() {
        Service service = manifests.get(Service.class, NAME);
        assertEquals("ClusterIP", service.getSpec().getType());
        for (String protocol : List.of("UDP", "TCP")) {
            ServicePort port = service.getSpec().getPorts().stream()
                    .filter(p -> p.getPort() == 53 && protocol.equals(p.getProtocol())).findFirst()
                    .orElseThrow(() -> new AssertionError("no 53/" + protocol + " in " + service.getSpec().getPorts()));
            ContainerPort target = containerPort(port.getTargetPort(), protocol)
                    .orElseThrow(() -> new AssertionError("53/" + protocol + " targets " + port.getTargetPort()
                            + ", which no container port of " + protocol + " is: " + container.getPorts()));
            assertEquals(env("DOTPROXY_LISTEN_PORT"), String.valueOf(target.getContainerPort()),
                    "the proxy listens on the port the Service targets");
        }
        assertTrue(selects(new LabelSelector(List.of(), service.getSpec().getSelector()), podLabels()),
                "the Service selects the Deployment's pods");
        assertFalse(Optional.ofNullable(service.getMetadata().getAnnotations()).orElse(Map.of()).containsKey("prometheus.io/scrape"),
                "scraped through the pods only: through the Service too, each pod would be scraped twice");
    }

    @Test
    void severalReplicasRollOneAtATimeAndSpreadOverNodes() {
        assertTrue(deployment.getSpec().getReplicas() >= 2, "replicas: " + deployment.getSpec().getReplicas());
        assertEquals("RollingUpdate", deployment.getSpec().getStrategy().getType());
        IntOrString maxUnavailable = deployment.getSpec().getStrategy().getRollingUpdate().getMaxUnavailable();
        assertEquals(0, maxUnavailable.getIntVal(), "maxUnavailable 0, as a number: " + maxUnavailable.getValue());
        IntOrString maxSurge = deployment.getSpec().getStrategy().getRollingUpdate().getMaxSurge();
        assertNotNull(maxSurge.getIntVal(), "maxSurge as a number (a string must be a percentage): " + maxSurge.getValue());
        assertTrue(maxSurge.getIntVal() >= 1, "a new pod starts before an old one stops");

        assertTrue(pod.getTopologySpreadConstraints().stream().anyMatch(spread ->
                        "kubernetes.io/hostname".equals(spread.getTopologyKey()) && selects(spread.getLabelSelector(), podLabels())),
                "spread over nodes: " + pod.getTopologySpreadConstraints());
        assertTrue(pod.getTopologySpreadConstraints().stream().anyMatch(spread ->
                        "topology.kubernetes.io/zone".equals(spread.getTopologyKey()) && "ScheduleAnyway".equals(spread.getWhenUnsatisfiable())),
                "spread over zones where nodes are labelled: " + pod.getTopologySpreadConstraints());
    }

    @Test
    void probesAskTheProxysHealthEndpoints() {
        assertProbe("liveness", container.getLivenessProbe(), "/q/health/live");
        assertProbe("readiness", container.getReadinessProbe(), "/q/health/ready");
        assertProbe("startup", container.getStartupProbe(), "/q/health/started");
    }

    private static void assertProbe(String which, Probe probe, String path) {
        assertNotNull(probe, which + " probe");
        HTTPGetAction get = probe.getHttpGet();
        assertNotNull(get, which + " probe over HTTP");
        assertEquals(path, get.getPath(), which + " probe path");
        assertEquals(HTTP_PORT, get.getPort().getIntVal(), which + " probe port");
        assertTrue(containerPort(get.getPort(), "TCP").isPresent(), which + " probe port is a container port");
    }

    /** The "restricted" Pod Security Standard, both the pod's and the container's part. */
    @Test
    void podAndContainerMeetTheRestrictedPodSecurityStandard() {
        PodSecurityContext podContext = pod.getSecurityContext();
        assertNotNull(podContext, "pod securityContext");
        assertEquals(Boolean.TRUE, podContext.getRunAsNonRoot());
        assertEquals(10001L, podContext.getRunAsUser(), "the image's user");
        assertEquals("RuntimeDefault", podContext.getSeccompProfile().getType());

        SecurityContext context = container.getSecurityContext();
        assertNotNull(context, "container securityContext");
        assertEquals(Boolean.FALSE, context.getAllowPrivilegeEscalation());
        assertEquals(Boolean.TRUE, context.getReadOnlyRootFilesystem());
        assertEquals(List.of("ALL"), context.getCapabilities().getDrop());
        assertTrue(context.getCapabilities().getAdd() == null || context.getCapabilities().getAdd().isEmpty(), "no capability added");
        assertFalse(Boolean.TRUE.equals(context.getPrivileged()), "not privileged");
        assertFalse(Boolean.FALSE.equals(context.getRunAsNonRoot()), "the container does not undo runAsNonRoot");
        assertTrue(context.getRunAsUser() == null || context.getRunAsUser() != 0, "not root");

        assertFalse(Boolean.TRUE.equals(pod.getHostNetwork()) || Boolean.TRUE.equals(pod.getHostPID())
                || Boolean.TRUE.equals(pod.getHostIPC()), "no host namespaces");
        assertTrue(container.getPorts().stream().allMatch(port -> port.getHostPort() == null), "no host ports");
        for (Volume volume : pod.getVolumes()) {
            assertTrue(volume.getConfigMap() != null || volume.getEmptyDir() != null, "volume " + volume.getName()
                    + " is of a kind the restricted standard allows (here: configMap or emptyDir)");
        }
    }

    @Test
    void theImageIsTheOneTheDockerfileBuildsAndTheLimitsAreSet() throws IOException {
        Matcher build = Pattern.compile("docker build -f Dockerfile.jvm -t (\\S+) \\.").matcher(Files.readString(Path.of("Dockerfile.jvm")));
        assertTrue(build.find(), "the build command in Dockerfile.jvm");
        assertEquals(build.group(1), container.getImage());
        assertEquals("IfNotPresent", container.getImagePullPolicy());

        Map<String, Quantity> requests = container.getResources().getRequests();
        Map<String, Quantity> limits = container.getResources().getLimits();
        assertNotNull(requests.get("cpu"), "a CPU request");
        assertTrue(Quantity.getAmountInBytes(limits.get("memory")).compareTo(Quantity.getAmountInBytes(requests.get("memory"))) >= 0,
                "memory limit at least the request");
    }

    /** A drain evicts one pod at a time, never the last ready ones, and only pods of this Deployment. */
    @Test
    void disruptionBudgetCoversTheDeploymentsPodsAndKeepsTwoReady() {
        PodDisruptionBudget budget = manifests.get(PodDisruptionBudget.class, NAME);
        assertTrue(selects(budget.getSpec().getSelector(), podLabels()), "the budget selects the Deployment's pods");
        assertEquals(deployment.getSpec().getSelector(), budget.getSpec().getSelector(), "and only them");
        int replicas = deployment.getSpec().getReplicas();
        int keptReady = budget.getSpec().getMinAvailable() != null
                ? scaled(budget.getSpec().getMinAvailable(), replicas)
                : replicas - scaled(budget.getSpec().getMaxUnavailable(), replicas);
        assertTrue(keptReady >= 2 && keptReady < replicas, "a drain keeps " + keptReady + " of " + replicas
                + " ready (at least 2, and it can still evict one)");
    }

    /** An IntOrString of a PodDisruptionBudget for {@code replicas}: a number, or a percentage rounded up. */
    private static int scaled(IntOrString value, int replicas) {
        if (value.getIntVal() != null) {
            return value.getIntVal();
        }
        int percent = Integer.parseInt(value.getStrVal().replace("%", ""));
        return (replicas * percent + 99) / 100;
    }

    /**
     * The settings file is the ConfigMap mounted as a directory (a subPath mount never sees an
     * edit) at the path DOTPROXY_CONFIG_FILE names, and the ConfigMap has that key.
     */
    @Test
    void theConfigMapIsMountedAsADirectoryWhereTheProxyReadsIt() {
        Path file = Path.of(env("DOTPROXY_CONFIG_FILE"));
        VolumeMount mount = container.getVolumeMounts().stream()
                .filter(m -> Path.of(m.getMountPath()).equals(file.getParent())).findFirst()
                .orElseThrow(() -> new AssertionError("nothing mounted at " + file.getParent() + ": " + container.getVolumeMounts()));
        assertTrue(mount.getSubPath() == null || mount.getSubPath().isEmpty(), "no subPath: " + mount.getSubPath());
        assertEquals(Boolean.TRUE, mount.getReadOnly());
        Volume volume = pod.getVolumes().stream().filter(v -> v.getName().equals(mount.getName())).findFirst().orElseThrow();
        assertNotNull(volume.getConfigMap(), "a ConfigMap volume");
        assertTrue(volume.getConfigMap().getItems() == null || volume.getConfigMap().getItems().isEmpty(), "every key, as named");
        assertTrue((volume.getConfigMap().getDefaultMode() & 0444) == 0444, "readable by the proxy's user, not only root");
        ConfigMap configMap = manifests.get(ConfigMap.class, volume.getConfigMap().getName());
        assertTrue(configMap.getData().containsKey(file.getFileName().toString()),
                "the ConfigMap has " + file.getFileName() + ": " + configMap.getData().keySet());
    }

    /** An environment variable of the container would mask the same key in the settings file. */
    @Test
    void noKeyOfTheConfigMapIsMaskedByTheContainersEnvironment() {
        Path file = Path.of(env("DOTPROXY_CONFIG_FILE"));
        String settings = manifests.configMapEntry(NAME, file.getFileName().toString());
        Set<String> environment = container.getEnv().stream().map(EnvVar::getName).collect(Collectors.toSet());
        for (String line : settings.lines().map(String::strip).toList()) {
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String key = line.split("[=:]", 2)[0].strip();
            assertFalse(environment.contains(key.toUpperCase(Locale.ROOT).replaceAll("[^A-Z0-9]", "_")), key + " is masked");
        }
    }

    @Test
    void podsCarryThePrometheusScrapeAnnotations() {
        Map<String, String> annotations = deployment.getSpec().getTemplate().getMetadata().getAnnotations();
        assertEquals("true", annotations.get("prometheus.io/scrape"));
        assertEquals(String.valueOf(HTTP_PORT), annotations.get("prometheus.io/port"));
        assertEquals("/q/metrics", annotations.get("prometheus.io/path"));
    }

    /** What {@code kubectl apply -k deploy} would send: the same resources, read as strictly. */
    @Test
    void kustomizeBuildsTheSameResources() throws Exception {
        Process kubectl = new ProcessBuilder("kubectl", "kustomize", DEPLOY.toString()).redirectErrorStream(false).start();
        String out = new String(kubectl.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(kubectl.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(kubectl.waitFor(60, TimeUnit.SECONDS), "kubectl kustomize finished");
        assertEquals(0, kubectl.exitValue(), err);
        Manifests built = Manifests.parse(out);
        assertEquals(manifests.all().stream().map(ManifestsIT::id).collect(Collectors.toSet()),
                built.all().stream().map(ManifestsIT::id).collect(Collectors.toSet()));
        assertEquals(container.getImage(), built.get(Deployment.class, NAME).getSpec().getTemplate().getSpec()
                .getContainers().get(0).getImage());
    }

    private static String id(HasMetadata resource) {
        return resource.getKind() + "/" + resource.getMetadata().getName();
    }

    private static Map<String, String> podLabels() {
        return deployment.getSpec().getTemplate().getMetadata().getLabels();
    }

    private static String env(String name) {
        return container.getEnv().stream().filter(variable -> variable.getName().equals(name)).map(EnvVar::getValue)
                .filter(Objects::nonNull).findFirst().orElseThrow(() -> new AssertionError("no env " + name));
    }

    /** The container port a Service's or probe's target names: by number or by name, of that protocol. */
    private static Optional<ContainerPort> containerPort(IntOrString target, String protocol) {
        return container.getPorts().stream()
                .filter(port -> protocol.equals(Optional.ofNullable(port.getProtocol()).orElse("TCP")))
                .filter(port -> target.getIntVal() != null ? target.getIntVal().equals(port.getContainerPort())
                        : target.getStrVal().equals(port.getName()))
                .findFirst();
    }

    /** Whether a label selector selects an object with these labels (matchLabels and matchExpressions). */
    private static boolean selects(LabelSelector selector, Map<String, String> labels) {
        if (selector == null) {
            fail("no selector");
        }
        Map<String, String> matchLabels = Optional.ofNullable(selector.getMatchLabels()).orElse(Map.of());
        if (matchLabels.isEmpty() && (selector.getMatchExpressions() == null || selector.getMatchExpressions().isEmpty())) {
            return false; // selects everything in the namespace: not "these pods"
        }
        boolean labelsMatch = matchLabels.entrySet().stream().allMatch(e -> e.getValue().equals(labels.get(e.getKey())));
        return labelsMatch && Optional.ofNullable(selector.getMatchExpressions()).orElse(List.of()).stream()
                .allMatch(requirement -> holds(requirement, labels));
    }

    private static boolean holds(LabelSelectorRequirement requirement, Map<String, String> labels) {
        String value = labels.get(requirement.getKey());
        return switch (requirement.getOperator()) {
            case "In" -> value != null && requirement.getValues().contains(value);
            case "NotIn" -> value == null || !requirement.getValues().contains(value);
            case "Exists" -> value != null;
            case "DoesNotExist" -> value == null;
            default -> throw new AssertionError("unknown operator " + requirement.getOperator());
        };
    }
}
