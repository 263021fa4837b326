package io.dotproxy.server;

/** How a client's query arrived; also the {@code proto} metric tag. */
public enum Transport {
    UDP,
    TCP;

    String tag() {
        return this == UDP ? "udp" : "tcp";
    }
}
