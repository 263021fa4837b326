package io.dotproxy.upstream;

import io.netty.util.NetUtil;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.regex.Pattern;

/**
 * Where a DoT resolver is and which name its certificate must carry, parsed from
 * {@code address[:port][#tls-name]}: {@code 1.1.1.1}, {@code 9.9.9.9:853#dns.quad9.net},
 * {@code [2606:4700:4700::1111]:853#cloudflare-dns.com}, {@code 2606:4700:4700::1111} or a host
 * name such as {@code dns.quad9.net} (looked up once, at start-up).
 *
 * <p>Without {@code #tls-name} the certificate must match the address as written: an IP address
 * SAN for an IP literal (as 1.1.1.1 has), or the host name.
 *
 * @param socketAddress the resolved address and port
 * @param tlsName the name the certificate is checked against, also sent as SNI when it is a host name
 */
public record UpstreamAddress(InetSocketAddress socketAddress, String tlsName) {
    private static final Pattern HOST_NAME = Pattern.compile(
            "(?i)(?=.{1,253}\\.?$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?(\\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*\\.?");

    /**
     * Parses one upstream.
     *
     * @param defaultPort the port when none is written
     * @throws IllegalArgumentException with a message saying what is wrong with {@code spec}
     */
    public static UpstreamAddress parse(String spec, int defaultPort) {
        String text = spec.strip();
        String tlsName = null;
        int hash = text.lastIndexOf('#');
        if (hash >= 0) {
            tlsName = text.substring(hash + 1);
            text = text.substring(0, hash);
            if (!isHostName(tlsName) && !NetUtil.isValidIpV4Address(tlsName) && !NetUtil.isValidIpV6Address(tlsName)) {
                throw new IllegalArgumentException("TLS name '" + tlsName + "' is not a host name or IP address");
            }
        }
        String host;
        int port = defaultPort;
        if (text.startsWith("[")) {
            int close = text.indexOf(']');
            if (close < 0) {
                throw new IllegalArgumentException("'[' without ']'");
            }
            host = text.substring(1, close);
            String rest = text.substring(close + 1);
            if (!rest.isEmpty()) {
                if (!rest.startsWith(":")) {
                    throw new IllegalArgumentException("expected ':port' after ']'");
                }
                port = parsePort(rest.substring(1));
            }
            if (!NetUtil.isValidIpV6Address(host)) {
                throw new IllegalArgumentException("'" + host + "' is not an IPv6 address");
            }
        } else if (text.indexOf(':') != text.lastIndexOf(':')) {
            host = text; // a bare IPv6 address; a port needs the [address]:port form
            if (!NetUtil.isValidIpV6Address(host)) {
                throw new IllegalArgumentException("'" + host + "' is not an IPv6 address (write [address]:port for a port)");
            }
        } else {
            int colon = text.indexOf(':');
            host = colon < 0 ? text : text.substring(0, colon);
            if (colon >= 0) {
                port = parsePort(text.substring(colon + 1));
            }
            if (!NetUtil.isValidIpV4Address(host) && !isHostName(host)) {
                throw new IllegalArgumentException("'" + host + "' is not an IP address or host name");
            }
        }
        InetAddress ip = resolve(host);
        return new UpstreamAddress(new InetSocketAddress(ip, port), tlsName != null ? tlsName : host);
    }

    private static InetAddress resolve(String host) {
        byte[] literal = NetUtil.createByteArrayFromIpAddressString(host);
        try {
            return literal != null ? InetAddress.getByAddress(literal) : InetAddress.getByName(host);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("host name '" + host + "' does not resolve");
        }
    }

    private static int parsePort(String text) {
        try {
            int port = Integer.parseInt(text);
            if (port >= 1 && port <= 65535) {
                return port;
            }
        } catch (NumberFormatException e) {
            // fall through to the message below
        }
        throw new IllegalArgumentException("port '" + text + "' is not a number from 1 to 65535");
    }

    private static boolean isHostName(String text) {
        return !text.isEmpty() && HOST_NAME.matcher(text).matches()
                && !text.chars().allMatch(c -> c == '.' || Character.isDigit(c));
    }

    /** The port of the resolver. */
    public int port() {
        return socketAddress.getPort();
    }

    /** {@code ip:port#tls-name}, with IPv6 in brackets: stable, and used as a metric tag. */
    @Override
    public String toString() {
        return NetUtil.toSocketAddressString(socketAddress) + "#" + tlsName;
    }
}
