package io.dotproxy.upstream;

import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.Optional;
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

    private TlsClientContext(SslContext sslContext) {
        this.sslContext = sslContext;
    }

    /**
     * Builds the context once at start-up.
     *
     * @param extraCaFile PEM file with more trusted CAs (for private resolvers), if any
     * @throws IllegalArgumentException when the file cannot be read or holds no certificate
     */
    public static TlsClientContext create(Optional<Path> extraCaFile) {
        try {
            TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            trust.init(trustStore(extraCaFile));
            SslContext context = SslContextBuilder.forClient()
                    // BoringSSL when its native library loads: it warms up in milliseconds where the
                    // JDK engine needs seconds of JIT, and costs less per record. The JDK otherwise.
                    .sslProvider(OpenSsl.isAvailable() ? SslProvider.OPENSSL : SslProvider.JDK)
                    .protocols("TLSv1.3", "TLSv1.2") // RFC 7858 §3.2 via RFC 8310/BCP 195: nothing older
                    .trustManager(trust)
                    .build();
            return new TlsClientContext(context);
        } catch (GeneralSecurityException | IOException e) {
            throw new IllegalArgumentException(e.getMessage(), e);
        }
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
