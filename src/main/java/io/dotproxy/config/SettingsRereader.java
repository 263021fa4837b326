package io.dotproxy.config;

import io.quarkus.runtime.configuration.DurationConverter;
import io.smallrye.config.DotEnvConfigSourceProvider;
import io.smallrye.config.PropertiesConfigSource;
import io.smallrye.config.PropertiesConfigSourceLoader;
import io.smallrye.config.SmallRyeConfig;
import io.smallrye.config.SmallRyeConfigBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * Reads the settings again, from the sources Quarkus read them from at start-up, in the same order:
 * {@code -D} (400), environment variables (300), a {@code .env} file in the working directory
 * (295), the settings file (275), {@code config/application.properties} in the working directory
 * (260), {@code application.properties} in the jar (250), the built-in defaults; under the same
 * profiles. What a reload applies is what a restart would read now, checked by the same {@link
 * SettingsReader}.
 */
final class SettingsRereader {
    private static final int APPLICATION_PROPERTIES = 250;
    private static final int CONFIG_DIRECTORY = 260;

    private final List<String> profiles;
    private final Path workingDirectory;

    /** @param profiles the profiles in force ({@code prod}, {@code dev}, {@code test}), as start-up had them */
    SettingsRereader(List<String> profiles) {
        this(profiles, Path.of("").toAbsolutePath());
    }

    /** @param workingDirectory where {@code .env} and {@code config/application.properties} are looked for */
    SettingsRereader(List<String> profiles, Path workingDirectory) {
        this.profiles = List.copyOf(profiles);
        this.workingDirectory = workingDirectory;
    }

    /**
     * The settings as they stand now.
     *
     * @throws ConfigError for the first value that cannot be used, with the start-up wording
     * @throws IllegalArgumentException for a value SmallRye cannot even convert (ConfigProblems words it)
     */
    ProxySettings read() {
        return read(config());
    }

    /**
     * The settings as they stand now, and the lines that say which keys of the settings {@code file}
     * are masked by an environment variable or {@code -D} (logged at every reload, as at start-up).
     */
    Reading read(Path file) {
        SmallRyeConfig config = config();
        return new Reading(read(config), SettingsFile.maskedKeys(config, file));
    }

    private static ProxySettings read(SmallRyeConfig config) {
        return SettingsReader.read(config.getConfigMapping(ProxyConfig.class), config.getOptionalValue("DoT_HOST", String.class));
    }

    /** Settings read again, with the masked keys of the file they were read from. */
    record Reading(ProxySettings settings, List<String> maskedKeys) {}

    private SmallRyeConfig config() {
        return mapping()
                .withProfiles(profiles)
                .addDefaultInterceptors()
                .addSystemSources()
                .withSources(applicationProperties())
                .withSources(PropertiesConfigSourceLoader.inFileSystem(
                        workingDirectory.resolve("config").resolve("application.properties").toUri().toString(),
                        CONFIG_DIRECTORY, loader()))
                .withSources(DotEnvConfigSourceProvider.dotEnvSources(
                        workingDirectory.resolve(".env").toUri().toString(), loader()))
                .withSources(new SettingsFile())
                .build();
    }

    private static ClassLoader loader() {
        return SettingsRereader.class.getClassLoader();
    }

    /** A builder of {@link ProxyConfig} as Quarkus maps it (with Quarkus's duration syntax), sources still to add. */
    static SmallRyeConfigBuilder mapping() {
        return new SmallRyeConfigBuilder()
                .withConverter(Duration.class, 200, new DurationConverter())
                .withMapping(ProxyConfig.class);
    }

    private static PropertiesConfigSource applicationProperties() {
        URL url = SettingsRereader.class.getClassLoader().getResource("application.properties");
        if (url == null) {
            return new PropertiesConfigSource(Map.of(), "application.properties (none)", APPLICATION_PROPERTIES);
        }
        try {
            return new PropertiesConfigSource(url, APPLICATION_PROPERTIES);
        } catch (IOException e) {
            throw new UncheckedIOException("application.properties cannot be read again", e);
        }
    }
}
