package io.dotproxy.upstream;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.Certificate;
import java.util.Base64;
import java.util.List;
import java.util.Set;

/**
 * SPKI pin checks (RFC 7858 §4.2, pins as in RFC 7469): the base64 SHA-256 digest of the
 * DER-encoded SubjectPublicKeyInfo of any certificate in the validated chain must be one of the
 * pins; several pins allow for a backup key. The chain is the path validation built
 * ({@link TlsClientContext#validatedPath}), not the certificates the server sent.
 */
public final class SpkiPins {
    private SpkiPins() {}

    /** True when there are no pins, or when one certificate of the validated {@code path} matches one. */
    static boolean matches(Set<String> pins, List<? extends Certificate> path) {
        if (pins.isEmpty()) {
            return true;
        }
        for (Certificate certificate : path) {
            if (pins.contains(pin(certificate))) {
                return true;
            }
        }
        return false;
    }

    /** The pin of one certificate: base64 of SHA-256 over its SubjectPublicKeyInfo. */
    public static String pin(Certificate certificate) {
        try {
            byte[] digest = MessageDigest.getInstance("SHA-256").digest(certificate.getPublicKey().getEncoded());
            return Base64.getEncoder().encodeToString(digest);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every JDK", e);
        }
    }

    /** Whether {@code text} looks like a pin: base64 of 32 octets. */
    public static boolean isWellFormed(String text) {
        try {
            return Base64.getDecoder().decode(text).length == 32;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }
}
