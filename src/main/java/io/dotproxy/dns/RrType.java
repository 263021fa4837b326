package io.dotproxy.dns;

/** The record types the proxy itself looks at; every other type passes through as a number. */
public final class RrType {
    /** EDNS(0) pseudo-record (RFC 6891). */
    public static final int OPT = 41;
    /** Start of a zone of authority; in a negative answer it says how long to cache it (RFC 2308). */
    public static final int SOA = 6;

    private RrType() {}
}
