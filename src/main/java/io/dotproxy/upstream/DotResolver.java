package io.dotproxy.upstream;

import java.util.Set;

/**
 * One DoT resolver to forward to: where it is, the name its certificate must carry, and the
 * public keys its validated chain must hold.
 *
 * @param address address, port and TLS name
 * @param spkiPins base64 SHA-256 digests of SubjectPublicKeyInfo, one of which a certificate of the
 *     validated path must match (RFC 7858 §4.2, several for a backup key); empty: no pinning
 */
public record DotResolver(UpstreamAddress address, Set<String> spkiPins) {
    public DotResolver {
        spkiPins = Set.copyOf(spkiPins);
    }

    /** The resolver as in logs and metric tags: its address, e.g. {@code 1.1.1.1:853#cloudflare-dns.com}. */
    @Override
    public String toString() {
        return address.toString();
    }
}
