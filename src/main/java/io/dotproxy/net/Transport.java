package io.dotproxy.net;

/** How a client's query arrived; also the {@code proto} metric tag. */
public enum Transport {
    UDP,
    TCP;

    public String tag() {
        return this == UDP ? "udp" : "tcp";
    }
}
