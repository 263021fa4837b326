package io.dotproxy.cache;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import org.xbill.DNS.ARecord;
import org.xbill.DNS.DClass;
import org.xbill.DNS.EDNSOption;
import org.xbill.DNS.ExtendedFlags;
import org.xbill.DNS.Flags;
import org.xbill.DNS.Message;
import org.xbill.DNS.Name;
import org.xbill.DNS.NSRecord;
import org.xbill.DNS.OPTRecord;
import org.xbill.DNS.Record;
import org.xbill.DNS.SOARecord;
import org.xbill.DNS.Section;
import org.xbill.DNS.TextParseException;

/**
 * dnsjava, the oracle of the cache tests: it builds the queries and the upstream's answers, and
 * reads what the cache gives back. Nothing here comes from the code under test.
 */
final class Dns {
    /** How a query speaks EDNS. */
    enum Edns { NONE, PLAIN, DO }

    private Dns() {}

    static Name name(String text) {
        try {
            return Name.fromString(text);
        } catch (TextParseException e) {
            throw new IllegalArgumentException(text, e);
        }
    }

    /** A query with RD set and a random ID. */
    static Message query(String name, int type, Edns edns, EDNSOption... options) {
        return query(name, type, DClass.IN, edns, options);
    }

    static Message query(String name, int type, int dclass, Edns edns, EDNSOption... options) {
        Message query = Message.newQuery(Record.newRecord(name(name), type, dclass));
        if (edns != Edns.NONE) {
            query.addRecord(new OPTRecord(1232, 0, 0, edns == Edns.DO ? ExtendedFlags.DO : 0, List.of(options)),
                    Section.ADDITIONAL);
        }
        return query;
    }

    /** The same query with another ID and name spelling. */
    static Message respelled(Message query, int id, String name) {
        Message copy = query.clone();
        copy.getHeader().setID(id);
        Record question = query.getQuestion();
        copy.removeAllRecords(Section.QUESTION);
        copy.addRecord(Record.newRecord(name(name), question.getType(), question.getDClass()), Section.QUESTION);
        return copy;
    }

    /**
     * An upstream's answer to {@code query}: its ID and question as asked, QR, RD as asked, RA, the
     * rcode, and an OPT record when the query had one (payload 1232, DO as asked, {@code options}).
     */
    static Message replyWithOptions(Message query, int rcode, EDNSOption... options) {
        Message reply = new Message(query.getHeader().getID());
        reply.getHeader().setFlag(Flags.QR);
        reply.getHeader().setFlag(Flags.RA);
        if (query.getHeader().getFlag(Flags.RD)) {
            reply.getHeader().setFlag(Flags.RD);
        }
        if (query.getHeader().getFlag(Flags.CD)) {
            reply.getHeader().setFlag(Flags.CD);
        }
        reply.getHeader().setRcode(rcode);
        reply.addRecord(query.getQuestion(), Section.QUESTION);
        OPTRecord opt = query.getOPT();
        if (opt != null) {
            reply.addRecord(new OPTRecord(1232, 0, 0, opt.getFlags() & ExtendedFlags.DO, List.of(options)),
                    Section.ADDITIONAL);
        }
        return reply;
    }

    /** {@link #replyWithOptions} without options, with records: each in the answer section, an SOA or NS in the authority section. */
    static Message reply(Message query, int rcode, Record... records) {
        Message reply = replyWithOptions(query, rcode);
        for (Record record : records) {
            boolean authority = record instanceof SOARecord || record instanceof NSRecord;
            reply.addRecord(record, authority ? Section.AUTHORITY : Section.ANSWER);
        }
        return reply;
    }

    static ARecord a(String owner, long ttl, String address) {
        try {
            return new ARecord(name(owner), DClass.IN, ttl, InetAddress.getByName(address));
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException(address, e);
        }
    }

    static NSRecord ns(String owner, long ttl, String target) {
        return new NSRecord(name(owner), DClass.IN, ttl, name(target));
    }

    static SOARecord soa(String zone, long ttl, long minimum) {
        return new SOARecord(name(zone), DClass.IN, ttl, name("ns1." + zone), name("hostmaster." + zone),
                2024120401, 7200, 3600, 1209600, minimum);
    }

    static ByteBuf wire(Message message) {
        return Unpooled.wrappedBuffer(message.toWire());
    }

    /** Reads {@code buf} with dnsjava and releases it. */
    static Message read(ByteBuf buf) {
        try {
            return new Message(ByteBufUtil.getBytes(buf));
        } catch (IOException e) {
            throw new AssertionError("dnsjava cannot read the message", e);
        } finally {
            buf.release();
        }
    }

    /** Every TTL of the answer and authority sections, and of the additional one but the OPT, in order. */
    static List<Long> ttls(Message message) {
        List<Long> ttls = new ArrayList<>();
        for (int section = Section.ANSWER; section <= Section.ADDITIONAL; section++) {
            for (Record record : message.getSection(section)) {
                if (!(record instanceof OPTRecord)) {
                    ttls.add(record.getTTL());
                }
            }
        }
        return ttls;
    }

    /** The records of every section but the question as text, TTLs left out, names in lower case (RFC 4343). */
    static List<String> records(Message message) {
        List<String> records = new ArrayList<>();
        for (int section = Section.ANSWER; section <= Section.ADDITIONAL; section++) {
            for (Record record : message.getSection(section)) {
                if (!(record instanceof OPTRecord)) {
                    // Lower case: names compressed into the question take the client's spelling.
                    records.add((section + " " + record.getName() + " " + record.getType() + " "
                            + record.rdataToString()).toLowerCase(java.util.Locale.ROOT));
                }
            }
        }
        return records;
    }
}
