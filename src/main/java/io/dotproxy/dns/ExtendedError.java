package io.dotproxy.dns;

import java.util.Locale;

/**
 * The INFO-CODEs of Extended DNS Errors (RFC 8914 §4), which say why an answer carries the rcode
 * it does. These are the codes RFC 8914 registered; the registry is first-come-first-served
 * (§5.2), so later codes are added here as the proxy comes to send them. The proxy only writes
 * these codes: EDE options in upstream answers pass through as bytes and are never decoded.
 */
public enum ExtendedError {
    /** No other code fits; RFC 8914 §4.1 asks for EXTRA-TEXT with it. */
    OTHER(0, "Other Error"),
    UNSUPPORTED_DNSKEY_ALGORITHM(1, "Unsupported DNSKEY Algorithm"),
    UNSUPPORTED_DS_DIGEST_TYPE(2, "Unsupported DS Digest Type"),
    /** Answered from cache after resolution ran out of time. */
    STALE_ANSWER(3, "Stale Answer"),
    FORGED_ANSWER(4, "Forged Answer"),
    DNSSEC_INDETERMINATE(5, "DNSSEC Indeterminate"),
    DNSSEC_BOGUS(6, "DNSSEC Bogus"),
    SIGNATURE_EXPIRED(7, "Signature Expired"),
    SIGNATURE_NOT_YET_VALID(8, "Signature Not Yet Valid"),
    DNSKEY_MISSING(9, "DNSKEY Missing"),
    RRSIGS_MISSING(10, "RRSIGs Missing"),
    NO_ZONE_KEY_BIT_SET(11, "No Zone Key Bit Set"),
    NSEC_MISSING(12, "NSEC Missing"),
    /** A SERVFAIL returned from cache. */
    CACHED_ERROR(13, "Cached Error"),
    /** The server was not fully functional when the query came (starting, say). */
    NOT_READY(14, "Not Ready"),
    BLOCKED(15, "Blocked"),
    CENSORED(16, "Censored"),
    FILTERED(17, "Filtered"),
    /** The client is not allowed to ask: annotates REFUSED. */
    PROHIBITED(18, "Prohibited"),
    STALE_NXDOMAIN_ANSWER(19, "Stale NXDomain Answer"),
    NOT_AUTHORITATIVE(20, "Not Authoritative"),
    /** The requested operation or query is not supported (an opcode other than QUERY, say). */
    NOT_SUPPORTED(21, "Not Supported"),
    /** No upstream could be reached, or they refused to reply. */
    NO_REACHABLE_AUTHORITY(22, "No Reachable Authority"),
    /** An unrecoverable error while talking to another server. */
    NETWORK_ERROR(23, "Network Error"),
    /** The server cannot answer with data for a zone it is otherwise configured to support. */
    INVALID_DATA(24, "Invalid Data");

    private final int code;
    private final String rfcName;
    private final String tag;

    ExtendedError(int code, String rfcName) {
        this.code = code;
        this.rfcName = rfcName;
        this.tag = name().toLowerCase(Locale.ROOT);
    }

    /** The 16-bit INFO-CODE written on the wire. */
    public int code() {
        return code;
    }

    /** The name RFC 8914 gives the code, as in its registry table ("No Reachable Authority"). */
    public String rfcName() {
        return rfcName;
    }

    /** The metric tag value: the lower-case constant name ({@code no_reachable_authority}). */
    public String tag() {
        return tag;
    }
}
