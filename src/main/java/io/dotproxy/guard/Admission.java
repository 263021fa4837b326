package io.dotproxy.guard;

import io.dotproxy.net.Transport;
import java.net.InetSocketAddress;

/**
 * The pipeline's first stage: may this client ask at all? The guard (allow-list, rate limits)
 * fills this seat; {@link #ADMIT_ALL} lets every client in.
 *
 * <p>Called on the event loop for every query before it is parsed, so it must be cheap and never
 * block. It keeps its own counts of why it refused; the pipeline counts only the verdicts.
 */
@FunctionalInterface
public interface Admission {
    /** Every client may ask. */
    Admission ADMIT_ALL = (client, transport) -> Verdict.ADMIT;

    /** The verdict on one query from {@code client}, which arrived over {@code transport}. */
    Verdict admit(InetSocketAddress client, Transport transport);

    /** What happens to the query. */
    enum Verdict {
        /** It goes on to the next stage. */
        ADMIT,
        /**
         * It gets REFUSED, with Extended DNS Error 18 "Prohibited" for an EDNS client (once its
         * wire format is checked, so that the answer can echo it).
         */
        REFUSE,
        /**
         * It gets an empty answer with TC=1 (once its wire format is checked): a real client
         * retries over TCP, whose handshake proves its address; a spoofed source gets no more
         * octets than it sent.
         */
        SLIP,
        /** It gets no answer at all: an answer to a spoofed source would be a reflection. */
        DROP
    }
}
