package io.dotproxy.config;

import io.quarkus.runtime.ApplicationLifecycleManager;
import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.annotations.QuarkusMain;
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
            ConfigValidationException invalid = find(failure, ConfigValidationException.class);
            if (invalid != null) {
                // User errors: one line each. Logging is already torn down here, so straight to stderr.
                ConfigProblems.describe(invalid).forEach(System.err::println);
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
