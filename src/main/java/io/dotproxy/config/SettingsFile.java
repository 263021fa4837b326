package io.dotproxy.config;

import io.smallrye.config.ConfigSourceContext;
import io.smallrye.config.ConfigSourceFactory;
import io.smallrye.config.ConfigValue;
import io.smallrye.config.PropertiesConfigSource;
import io.smallrye.config.SmallRyeConfig;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.eclipse.microprofile.config.spi.ConfigSource;

/**
 * The settings file named by {@code dotproxy.config-file} ({@code DOTPROXY_CONFIG_FILE}): a Java
 * properties file with the {@code dotproxy.*} keys, such as a mounted ConfigMap, read as one more
 * configuration source. Its ordinal puts it above {@code application.properties} (250) and below
 * environment variables (300) and {@code -D} (400): an operator's file overrides the built-in
 * settings, and the container's explicit environment still wins, which {@link #maskedKeys} reports.
 *
 * <p>Registered with SmallRye Config as a {@link ConfigSourceFactory}
 * ({@code META-INF/services/io.smallrye.config.ConfigSourceFactory}), so the file's values reach
 * {@link ProxyConfig} and its checks like any other. An unreadable file yields no source here;
 * {@link SettingsReader} then stops start-up with one line naming the key.
 */
public final class SettingsFile implements ConfigSourceFactory {
    /** The key that names the file. */
    static final String KEY = "dotproxy.config-file";
    /** Between application.properties (250) and environment variables (300). */
    static final int ORDINAL = 275;
    private static final int ENVIRONMENT = 300;
    private static final int SYSTEM_PROPERTIES = 400;

    @Override
    public Iterable<ConfigSource> getConfigSources(ConfigSourceContext context) {
        ConfigValue named = context.getValue(KEY);
        if (named == null || named.getValue() == null || named.getValue().isBlank()) {
            return List.of();
        }
        Path path = Path.of(named.getValue().strip());
        try {
            return List.of(new Source(path, read(path)));
        } catch (IOException | IllegalArgumentException e) {
            return List.of(); // reported by SettingsReader, in one line
        }
    }

    /** The file's values as a source of the configuration, which remembers the file it was read from. */
    private static final class Source extends PropertiesConfigSource {
        private final Path path;

        Source(Path path, Map<String, String> values) {
            super(values, sourceName(path), SettingsFile.ORDINAL); // qualified: ConfigSource has an ORDINAL of its own
            this.path = path;
        }
    }

    /** The file's keys and values. */
    static Map<String, String> read(Path path) throws IOException {
        Properties properties = new Properties();
        try (Reader reader = Files.newBufferedReader(path, StandardCharsets.UTF_8)) {
            properties.load(reader); // IllegalArgumentException for a malformed \\uXXXX escape
        }
        Map<String, String> values = new TreeMap<>();
        properties.forEach((key, value) -> values.put(key.toString(), value.toString()));
        return values;
    }

    /** How the source is named in SmallRye's reports (of a value it could not convert, say). */
    private static String sourceName(Path path) {
        return KEY + " " + path;
    }

    /**
     * One line for each key the file sets whose value is not the one in force, because a source
     * above the file (an environment variable, a {@code -D}) sets it too: the classic "my ConfigMap
     * change did nothing". The keys are those of the file as {@code config} read it (its source),
     * not of a second reading that could differ; none when it could not be read.
     */
    static List<String> maskedKeys(SmallRyeConfig config, Path path) {
        Set<String> fileKeys = new TreeSet<>();
        for (ConfigSource source : config.getConfigSources()) {
            if (source instanceof Source read && read.path.equals(path)) {
                fileKeys.addAll(read.getPropertyNames());
            }
        }
        List<String> lines = new ArrayList<>();
        for (String key : fileKeys) {
            ConfigValue value = config.getConfigValue(key);
            if (value.getValue() != null && value.getSourceOrdinal() > ORDINAL) {
                lines.add(key + " in " + path + " has no effect: " + overrider(key, value) + " sets it too");
            }
        }
        return lines;
    }

    /** Who set a key above the file, in the words an operator would look for. */
    private static String overrider(String key, ConfigValue value) {
        int ordinal = value.getSourceOrdinal();
        if (ordinal >= SYSTEM_PROPERTIES) {
            return "-D" + key;
        }
        if (ordinal >= ENVIRONMENT) {
            return "the environment variable " + key.toUpperCase(Locale.ROOT).replaceAll("[^A-Z0-9]", "_");
        }
        return value.getSourceName();
    }

    /** The file named by the configuration, if any. */
    static Optional<Path> named(Optional<String> configFile) {
        return configFile.filter(name -> !name.isBlank()).map(name -> Path.of(name.strip()));
    }
}
