package io.dotproxy.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * A folder laid out as the kubelet mounts a ConfigMap: each version of the contents in a folder of
 * its own, {@code ..data} a symbolic link to the one in force (swapped in one rename), and the key
 * itself a symbolic link through {@code ..data}.
 */
final class ConfigMapMount {
    static final String KEY = "dot-proxy.properties";

    private final Path dir;
    private int version;

    private ConfigMapMount(Path dir) {
        this.dir = dir;
    }

    /** A mount in a new folder {@code config} under {@code parent}, holding {@code contents}. */
    static ConfigMapMount create(Path parent, String contents) throws IOException {
        ConfigMapMount mount = new ConfigMapMount(Files.createDirectory(parent.resolve("config")));
        mount.publish(contents);
        Files.createSymbolicLink(mount.file(), Path.of("..data", KEY));
        return mount;
    }

    /** The settings file as the proxy is told of it. */
    Path file() {
        return dir.resolve(KEY);
    }

    /** Writes a new version and swaps {@code ..data} to it in one rename, as the kubelet does. */
    void publish(String contents) throws IOException {
        Path versionDir = Files.createDirectory(dir.resolve("..2026_12_05_v" + ++version));
        Files.writeString(versionDir.resolve(KEY), contents);
        Path staging = Files.createSymbolicLink(dir.resolve("..data_tmp"), versionDir.getFileName());
        Files.move(staging, dir.resolve("..data"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
