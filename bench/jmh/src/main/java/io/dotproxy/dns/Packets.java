package io.dotproxy.dns;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.util.HexFormat;

/** Golden packets the micro-benchmarks share. */
public final class Packets {
    /** www.example.com A with an OPT record (payload 1232, DO), as dig sends it. */
    public static final String QUERY = "1a2b 0120 0001 0000 0000 0001 03777777 076578616d706c65 03636f6d 00 0001 0001"
            + " 00 0029 04d0 00008000 0000";
    /** Its answer: the question, one A record (owner compressed), OPT. */
    public static final String ANSWER = "1a2b 8180 0001 0001 0000 0001 03777777 076578616d706c65 03636f6d 00 0001 0001"
            + " c00c 0001 0001 0000012c 0004 c0000201 00 0029 04d0 00000000 0000";

    private Packets() {}

    /** A direct buffer holding the octets written in hex (spaces ignored). */
    public static ByteBuf direct(String hex) {
        return Unpooled.directBuffer().writeBytes(HexFormat.of().parseHex(hex.replace(" ", "")));
    }
}
