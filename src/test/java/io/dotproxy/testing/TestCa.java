package io.dotproxy.testing;

import java.io.IOException;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * A throw-away certificate authority made at test time, issuing resolver certificates and, for
 * chains longer than one, intermediate CAs.
 */
public final class TestCa {
    /** A key and the certificate the CA issued for it. */
    public record Issued(PrivateKey key, X509Certificate certificate) {
        /** Writes the certificate and a PKCS#8 key as PEM files (for unbound). */
        public void writePem(Path certificateFile, Path keyFile) throws IOException {
            Files.writeString(certificateFile, pem(certificate));
            StringWriter out = new StringWriter();
            try (JcaPEMWriter writer = new JcaPEMWriter(out)) {
                writer.writeObject(new JcaPKCS8Generator(key, null));
            }
            Files.writeString(keyFile, out.toString());
        }
    }

    private static final AtomicLong SERIAL = new AtomicLong(System.currentTimeMillis());

    private final X500Name name;
    private final KeyPair caKey;
    private final X509Certificate caCertificate;

    private TestCa(X500Name name, KeyPair caKey, X509Certificate caCertificate) {
        this.name = name;
        this.caKey = caKey;
        this.caCertificate = caCertificate;
    }

    public static TestCa create() {
        return create("dot-proxy test CA");
    }

    /** A self-signed root CA named {@code CN=commonName}. */
    public static TestCa create(String commonName) {
        try {
            KeyPair key = newKey();
            X500Name name = new X500Name("CN=" + commonName);
            return new TestCa(name, key, caCertificate(name, key, name, key.getPrivate()));
        } catch (GeneralSecurityException | IOException | OperatorCreationException e) {
            throw new IllegalStateException(e);
        }
    }

    /** An intermediate CA named {@code CN=commonName}, signed by this one. */
    public TestCa intermediate(String commonName) {
        try {
            KeyPair key = newKey();
            X500Name subject = new X500Name("CN=" + commonName);
            return new TestCa(subject, key, caCertificate(subject, key, name, caKey.getPrivate()));
        } catch (GeneralSecurityException | IOException | OperatorCreationException e) {
            throw new IllegalStateException(e);
        }
    }

    private static X509Certificate caCertificate(X500Name subject, KeyPair key, X500Name issuer, PrivateKey signer)
            throws GeneralSecurityException, IOException, OperatorCreationException {
        Instant now = Instant.now();
        X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(issuer,
                BigInteger.valueOf(SERIAL.incrementAndGet()), Date.from(now.minus(Duration.ofHours(1))),
                Date.from(now.plus(Duration.ofDays(2))), subject, key.getPublic());
        builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        builder.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
        return sign(builder, signer);
    }

    public X509Certificate certificate() {
        return caCertificate;
    }

    /** Writes the CA certificate as a PEM bundle, as {@code dotproxy.tls.ca-file} expects. */
    public Path writePem(Path file) throws IOException {
        Files.writeString(file, pem(caCertificate));
        return file;
    }

    /** A server certificate valid now for the given DNS names and IP addresses. */
    public Issued issue(List<String> dnsNames, List<String> ipAddresses) {
        Instant now = Instant.now();
        return issue(dnsNames, ipAddresses, now.minus(Duration.ofHours(1)), now.plus(Duration.ofDays(1)));
    }

    /** A server certificate valid between the two instants. */
    public Issued issue(List<String> dnsNames, List<String> ipAddresses, Instant notBefore, Instant notAfter) {
        try {
            KeyPair key = newKey();
            String cn = dnsNames.isEmpty() ? ipAddresses.get(0) : dnsNames.get(0);
            JcaX509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(
                    name, BigInteger.valueOf(SERIAL.incrementAndGet()),
                    Date.from(notBefore), Date.from(notAfter), new X500Name("CN=" + cn), key.getPublic());
            List<GeneralName> names = new ArrayList<>();
            dnsNames.forEach(n -> names.add(new GeneralName(GeneralName.dNSName, n)));
            ipAddresses.forEach(ip -> names.add(new GeneralName(GeneralName.iPAddress, ip)));
            builder.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names.toArray(GeneralName[]::new)));
            builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            builder.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
            builder.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth));
            return new Issued(key.getPrivate(), sign(builder, caKey.getPrivate()));
        } catch (GeneralSecurityException | IOException | OperatorCreationException e) {
            throw new IllegalStateException(e);
        }
    }

    private static KeyPair newKey() throws GeneralSecurityException {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(256);
        return generator.generateKeyPair();
    }

    private static X509Certificate sign(X509v3CertificateBuilder builder, PrivateKey signer)
            throws OperatorCreationException, GeneralSecurityException {
        return new JcaX509CertificateConverter().getCertificate(
                builder.build(new JcaContentSignerBuilder("SHA256withECDSA").build(signer)));
    }

    private static String pem(Object object) throws IOException {
        StringWriter out = new StringWriter();
        try (JcaPEMWriter writer = new JcaPEMWriter(out)) {
            writer.writeObject(object);
        }
        return out.toString();
    }
}
