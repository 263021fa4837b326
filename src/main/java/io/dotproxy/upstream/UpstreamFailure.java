package io.dotproxy.upstream;

import java.util.Locale;

/** Why an upstream gave no answer to a query. Each is counted; the client gets SERVFAIL. */
public enum UpstreamFailure {
    /** The query's deadline passed before an answer came. */
    TIMEOUT("upstream timed out"),
    /** The TCP connection could not be opened. */
    CONNECT("upstream refused or unreachable"),
    /** The TLS handshake failed: certificate chain, name, pin or protocol version. */
    TLS("upstream TLS or certificate check failed"),
    /** The connection broke while the query was in flight, and it had no resend left. */
    CLOSED("upstream connection closed"),
    /**
     * No connection could be had: none was open and the handshake budget was spent, or the
     * upstream was closed or its event loop shutting down. Also what the group reports when it
     * made no attempt at all (every upstream down, none to be tried). Our own limit, not the
     * upstream's health: it does not count against the upstream.
     */
    UNAVAILABLE("no upstream available"),
    /** Too many queries are already in flight to this upstream. */
    OVERLOADED("too many queries waiting for upstreams");

    private final String description;

    UpstreamFailure(String description) {
        this.description = description;
    }

    /** A few words for a person reading the client's answer (an Extended DNS Error's text). */
    public String description() {
        return description;
    }

    /** The metric tag value: the lower-case name. */
    public String tag() {
        return name().toLowerCase(Locale.ROOT);
    }
}
