package io.dotproxy.dns;

/**
 * Response codes as an open set: the codes the proxy sends itself have constants, and any of the
 * sixteen header values has a printable name (for metric tags) without an exception for the rest.
 */
public final class Rcode {
    public static final int NOERROR = 0;
    public static final int FORMERR = 1;
    public static final int SERVFAIL = 2;
    public static final int NXDOMAIN = 3;
    public static final int NOTIMP = 4;
    public static final int REFUSED = 5;

    /** Number of distinct values of the 4-bit header field. */
    public static final int HEADER_VALUES = 16;

    private static final String[] NAMES = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE", "DSOTYPENI", "RCODE12", "RCODE13", "RCODE14", "RCODE15"
    };

    private Rcode() {}

    /** The IANA mnemonic of a 4-bit header rcode, or {@code RCODEn} for unassigned values. */
    public static String name(int headerRcode) {
        return NAMES[headerRcode & 0xF];
    }
}
