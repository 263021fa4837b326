package io.dotproxy.config;

/** A setting with a value the proxy cannot use; the message names both and what is allowed. */
public final class ConfigError extends RuntimeException {
    private static final long serialVersionUID = 1L;

    ConfigError(String setting, Object value, String allowed) {
        super("Invalid configuration: " + setting + "=" + value + ": " + allowed, null, false, false);
    }
}
