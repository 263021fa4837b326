package io.dotproxy.dns;

/**
 * A DNS message that does not follow the wire format (RFC 1035 §4): a field past the end, a bad
 * label, a compression pointer that does not point backwards, counts that do not match the data.
 *
 * <p>Thrown for broken input, which a proxy sees routinely, so it carries no stack trace.
 */
public final class WireFormatException extends Exception {
    private static final long serialVersionUID = 1L;

    public WireFormatException(String message) {
        super(message, null, false, false);
    }
}
