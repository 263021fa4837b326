package io.dotproxy.dns;

/** The record types the proxy itself looks at; every other type passes through as a number. */
public final class RrType {
    /** EDNS(0) pseudo-record (RFC 6891). */
    public static final int OPT = 41;

    private RrType() {}
}
