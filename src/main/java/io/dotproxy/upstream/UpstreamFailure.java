package io.dotproxy.upstream;

/** Why an upstream gave no answer to a query. Each is counted; the client gets SERVFAIL. */
public enum UpstreamFailure {
    /** The query's deadline passed before an answer came. */
    TIMEOUT,
    /** The TCP connection could not be opened. */
    CONNECT,
    /** The TLS handshake failed: certificate chain, name, pin or protocol version. */
    TLS,
    /** The connection broke while the query was in flight, and it had no resend left. */
    CLOSED,
    /** The upstream failed recently and is left alone for a short hold-off. */
    UNAVAILABLE,
    /** Too many queries are already in flight to this upstream. */
    OVERLOADED;

    /** The metric tag value: the lower-case name. */
    public String tag() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
