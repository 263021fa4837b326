package io.dotproxy.config;

import io.quarkus.runtime.ApplicationLifecycleManager;
import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.QuarkusBindException;
import io.quarkus.runtime.annotations.QuarkusMain;
import io.quarkus.runtime.configuration.ConfigurationException;
import io.smallrye.config.ConfigValidationException;

/**
 * The entry point: Quarkus as usual, but a configuration value that cannot even be converted
 * stops start-up with the same one line per setting as any other bad value, instead of the
 * library's own two-line report.
 */
@QuarkusMain
public final class ProxyMain {
    private ProxyMain() {}

    public static void main(String... args) {
        Quarkus.run(null, ProxyMain::exit, args);
    }

    /** Reports why start-up failed, if it did, then exits as Quarkus would. */
    private static void exit(int status, Throwable failure) {
        if (failure != null) {
            // Logging is already torn down here, so straight to stderr.
            ConfigValidationException invalid = find(failure, ConfigValidationException.class);
            QuarkusBindException portTaken = find(failure, QuarkusBindException.class);
            ConfigurationException quarkusSetting = find(failure, ConfigurationException.class);
            if (invalid != null) {
                ConfigProblems.describe(invalid).forEach(System.err::println); // user errors: one line each
            } else if (portTaken != null) {
                System.err.println("Cannot listen on " + portTaken.getHost() + " port " + portTaken.getPort()
                        + ": it is in use by another process");
            } else if (quarkusSetting != null) {
                System.err.println(quarkusSetting.getMessage()); // as Quarkus itself reports it
            } else {
                failure.printStackTrace(); // not a user error: the stack trace helps
            }
        }
        ApplicationLifecycleManager.getDefaultExitCodeHandler().accept(status, failure);
    }

    private static <T extends Throwable> T find(Throwable failure, Class<T> type) {
        for (Throwable cause = failure; cause != null; cause = cause.getCause() == cause ? null : cause.getCause()) {
            if (type.isInstance(cause)) {
                return type.cast(cause);
            }
        }
        return null;
    }
}
