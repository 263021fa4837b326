package io.dotproxy.testing;

import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.introspect.Annotated;
import com.fasterxml.jackson.databind.introspect.JacksonAnnotationIntrospector;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.KubernetesResource;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.NoSuchElementException;

/**
 * Kubernetes manifests read strictly and offline, as an API server would refuse them: a kind the
 * fabric8 model does not know, a field its type does not have, a string where a number belongs
 * (the API server takes no {@code "1"} for 1) or a key given twice all fail. fabric8's own
 * reader is lenient by design: it keeps unknown fields in {@code additionalProperties} and unknown
 * kinds as {@code GenericKubernetesResource}; here its model's any-setters are switched off.
 */
public final class Manifests {
    /** Only for the kinds it registers; reading is {@link #STRICT}'s. */
    private static final KubernetesSerialization KINDS = new KubernetesSerialization();
    private static final ObjectMapper STRICT = YAMLMapper.builder(YAMLFactory.builder()
                    .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build())
            .annotationIntrospector(new NoAnySetters())
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
            .build();

    private final List<HasMetadata> resources;

    private Manifests(List<HasMetadata> resources) {
        this.resources = List.copyOf(resources);
    }

    /** Every resource of every file, in order. */
    public static Manifests read(List<Path> files) throws IOException {
        List<HasMetadata> resources = new ArrayList<>();
        for (Path file : files) {
            resources.addAll(parse(file + "", Files.readString(file)));
        }
        return new Manifests(resources);
    }

    /** The resources of one YAML stream (documents separated by {@code ---}). */
    public static Manifests parse(String yaml) throws IOException {
        return new Manifests(parse("manifest", yaml));
    }

    private static List<HasMetadata> parse(String source, String yaml) throws IOException {
        List<HasMetadata> resources = new ArrayList<>();
        try (MappingIterator<JsonNode> documents = STRICT.readerFor(JsonNode.class).readValues(yaml)) {
            while (documents.hasNextValue()) {
                JsonNode document = documents.nextValue();
                if (document == null || document.isNull() || document.isMissingNode() || document.isEmpty()) {
                    continue;
                }
                String apiVersion = document.path("apiVersion").asText();
                String kind = document.path("kind").asText();
                Class<? extends KubernetesResource> type = KINDS.getRegisteredKubernetesResource(apiVersion, kind);
                if (type == null || !HasMetadata.class.isAssignableFrom(type)) {
                    throw new IOException(source + ": unknown kind " + kind + " of " + apiVersion);
                }
                try {
                    resources.add((HasMetadata) STRICT.treeToValue(document, type));
                } catch (IOException e) {
                    throw new IOException(source + ": " + kind + " " + document.path("metadata").path("name").asText()
                            + ": " + e.getMessage(), e);
                }
            }
        }
        return resources;
    }

    /** All resources. */
    public List<HasMetadata> all() {
        return resources;
    }

    /** The one resource of that type and name. */
    public <T extends HasMetadata> T get(Class<T> type, String name) {
        return resources.stream().filter(type::isInstance).map(type::cast)
                .filter(resource -> name.equals(resource.getMetadata().getName()))
                .findFirst().orElseThrow(() -> new NoSuchElementException("no " + type.getSimpleName() + " " + name));
    }

    /** The one resource of that type. */
    public <T extends HasMetadata> T only(Class<T> type) {
        List<T> found = resources.stream().filter(type::isInstance).map(type::cast).toList();
        if (found.size() != 1) {
            throw new NoSuchElementException(found.size() + " resources of kind " + type.getSimpleName() + ", expected one");
        }
        return found.get(0);
    }

    /** The text under {@code key} of the ConfigMap {@code name}. */
    public String configMapEntry(String name, String key) {
        String value = get(ConfigMap.class, name).getData().get(key);
        if (value == null) {
            throw new NoSuchElementException("ConfigMap " + name + " has no key " + key);
        }
        return value;
    }

    /** fabric8's model collects unknown fields through any-setters; without them they fail. */
    private static final class NoAnySetters extends JacksonAnnotationIntrospector {
        @Override
        public Boolean hasAnySetter(Annotated annotated) {
            return Boolean.FALSE;
        }
    }
}
