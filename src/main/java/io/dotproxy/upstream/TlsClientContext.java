package io.dotproxy.upstream;

import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.KeyStoreException;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertPathBuilderException;
import java.security.cert.CertStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.PKIXCertPathBuilderResult;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

/**
 * The TLS side of RFC 7858: TLS 1.2 or 1.3 only, the resolver's chain checked against the system
 * trust store plus an optional PEM bundle, and its certificate checked against the expected name.
 */
public final class TlsClientContext {
    private final SslContext sslContext;
    /** The CAs the handshake trusts, for rebuilding the path it validated. */
    private final Set<TrustAnchor> anchors;

    private TlsClientContext(SslContext sslContext, Set<TrustAnchor> anchors) {
        this.sslContext = sslContext;
        this.anchors = anchors;
    }

    /**
     * Builds the context once at start-up.
     *
     * @param extraCaFile PEM file with more trusted CAs (for private resolvers), if any
     * @throws IllegalArgumentException when the file cannot be read or holds no certificate
     */
    public static TlsClientContext create(Optional<Path> extraCaFile) {
        try {
            KeyStore store = trustStore(extraCaFile);
            TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            trust.init(store);
            SslContext context = SslContextBuilder.forClient()
                    // BoringSSL when its native library loads: it warms up in milliseconds where the
                    // JDK engine needs seconds of JIT, and costs less per record. The JDK otherwise.
                    .sslProvider(OpenSsl.isAvailable() ? SslProvider.OPENSSL : SslProvider.JDK)
                    .protocols("TLSv1.3", "TLSv1.2") // RFC 7858 §3.2 via RFC 8310/BCP 195: nothing older
                    .trustManager(trust)
                    .build();
            return new TlsClientContext(context, anchors(store));
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
    }

    /** The store's certificates as PKIX trust anchors, as the trust manager takes them. */
    private static Set<TrustAnchor> anchors(KeyStore store) throws KeyStoreException {
        Set<TrustAnchor> anchors = new HashSet<>();
        for (String alias : Collections.list(store.aliases())) {
            if (store.getCertificate(alias) instanceof X509Certificate ca) {
                anchors.add(new TrustAnchor(ca, null));
            }
        }
        return Set.copyOf(anchors);
    }

    private static KeyStore trustStore(Optional<Path> extraCaFile) throws GeneralSecurityException, IOException {
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        TrustManagerFactory system = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        system.init((KeyStore) null);
        int n = 0;
        for (var manager : system.getTrustManagers()) {
            if (manager instanceof X509TrustManager x509) {
                for (X509Certificate ca : x509.getAcceptedIssuers()) {
                    store.setCertificateEntry("system-" + n++, ca);
                }
            }
        }
        if (extraCaFile.isPresent()) {
            Collection<? extends Certificate> extra;
            try (InputStream in = Files.newInputStream(extraCaFile.get())) {
                extra = CertificateFactory.getInstance("X.509").generateCertificates(in);
            } catch (IOException e) {
                throw new IOException("cannot read " + extraCaFile.get() + ": " + e.getMessage(), e);
            } catch (GeneralSecurityException e) {
                throw new IOException(extraCaFile.get() + " is not a PEM certificate bundle: " + e.getMessage(), e);
            }
            if (extra.isEmpty()) {
                throw new IOException(extraCaFile.get() + " holds no PEM certificate");
            }
            for (Certificate ca : extra) {
                store.setCertificateEntry("extra-" + n++, ca);
            }
        }
        return store;
    }

    /**
     * The certification path from the server's certificate to a trusted CA, built as the
     * handshake's PKIX validation builds it: the server's certificate first, then the
     * intermediates, then the trust anchor's certificate (which servers need not send). A
     * certificate the server sent that is not on the path is left out, since anyone may append a
     * public certificate to a chain. Revocation is not checked, as in the handshake.
     *
     * <p>SPKI pins are checked against this path (RFC 7469 §2.6, "validated certificate chain").
     * The trust manager does not expose the path it built, so it is built again here, from the
     * same anchors and with the presented certificates as the only candidates; CPU work on the
     * order of the handshake's own checks, done only for pinned upstreams.
     *
     * @param presented the peer's certificates as the session holds them, the server's first
     * @throws GeneralSecurityException when no path to a trusted CA exists
     */
    List<X509Certificate> validatedPath(Certificate[] presented) throws GeneralSecurityException {
        List<X509Certificate> candidates = new ArrayList<>(presented.length);
        for (Certificate certificate : presented) {
            if (certificate instanceof X509Certificate x509) {
                candidates.add(x509);
            }
        }
        if (candidates.isEmpty()) {
            throw new CertPathBuilderException("the server presented no X.509 certificate");
        }
        X509CertSelector target = new X509CertSelector();
        target.setCertificate(candidates.get(0));
        PKIXBuilderParameters parameters = new PKIXBuilderParameters(anchors, target);
        parameters.setRevocationEnabled(false);
        parameters.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(candidates)));
        PKIXCertPathBuilderResult built = (PKIXCertPathBuilderResult) CertPathBuilder.getInstance("PKIX").build(parameters);
        List<X509Certificate> path = new ArrayList<>();
        for (Certificate certificate : built.getCertPath().getCertificates()) {
            path.add((X509Certificate) certificate);
        }
        path.add(built.getTrustAnchor().getTrustedCert()); // never null: every anchor comes from a certificate
        return path;
    }

    /** Which TLS implementation is in use, for the start-up log. */
    public String provider() {
        return OpenSsl.isAvailable() ? OpenSsl.versionString() : "JDK";
    }

    /**
     * A handler for one connection to {@code address}. Name checking is the JDK's HTTPS endpoint
     * identification (RFC 2818/6125 rules: DNS SANs for names, IP SANs for literals).
     */
    public SslHandler newHandler(ByteBufAllocator alloc, UpstreamAddress address) {
        SslHandler handler = sslContext.newHandler(alloc, address.tlsName(), address.port());
        SSLEngine engine = handler.engine();
        SSLParameters parameters = engine.getSSLParameters();
        parameters.setEndpointIdentificationAlgorithm("HTTPS");
        engine.setSSLParameters(parameters);
        return handler;
    }
}
