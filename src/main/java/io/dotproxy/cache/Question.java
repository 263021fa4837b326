package io.dotproxy.cache;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.ThreadLocalRandom;

/**
 * What makes two queries ask the same of the cache: the question name (case-insensitively, RFC
 * 4343), type and class, and the bits that change the answer an upstream gives: DO (RFC 3225), CD
 * (RFC 4035 §3.2.2) and whether the query speaks EDNS at all (an answer's OPT record follows the
 * query's, RFC 6891 §7). The key is a seeded 64-bit hash, so a lookup allocates nothing; an entry
 * keeps the question itself, so that a hash collision is a miss, never a wrong answer.
 */
final class Question {
    static final int DO = 1;
    static final int CD = 2;
    static final int EDNS = 4;

    // A seed per process: names chosen to collide in one process do not collide in another.
    private static final long SEED = ThreadLocalRandom.current().nextLong();
    private static final long PRIME = 0x100000001b3L; // FNV-1a 64

    private Question() {}

    /** The key of a query, or of an answer, whose view is {@code parsed} (one question). */
    static long key(ByteBuf message, Message parsed) {
        long hash = SEED;
        int nameEnd = parsed.questionEnd() - 4;
        for (int i = parsed.questionStart(); i < nameEnd; i++) {
            hash = (hash ^ lower(message.getByte(i))) * PRIME;
        }
        hash = (hash ^ message.getInt(nameEnd)) * PRIME; // type and class
        hash = (hash ^ bits(parsed)) * PRIME;
        return mix(hash);
    }

    /** The DO, CD and EDNS bits of a query or answer. */
    static int bits(Message parsed) {
        return (parsed.dnssecOk() ? DO : 0) | ((parsed.flags() & Header.FLAG_CD) != 0 ? CD : 0)
                | (parsed.hasOpt() ? EDNS : 0);
    }

    /** The question in the form an entry keeps: the name in lower case, then type and class. */
    static byte[] lowerCase(ByteBuf message, Message parsed) {
        int from = parsed.questionStart();
        byte[] question = new byte[parsed.questionEnd() - from];
        message.getBytes(from, question);
        for (int i = 0; i < question.length - 4; i++) {
            question[i] = lower(question[i]);
        }
        return question;
    }

    /** Whether the question of {@code message} is {@code question} (as {@link #lowerCase} made it). */
    static boolean matches(byte[] question, ByteBuf message, Message parsed) {
        return matches(question, 0, question.length, message, parsed);
    }

    /** The same for a question kept as {@code length} octets of {@code bytes} from {@code at}. */
    static boolean matches(byte[] bytes, int at, int length, ByteBuf message, Message parsed) {
        int from = parsed.questionStart();
        if (parsed.questionEnd() - from != length) {
            return false;
        }
        int nameLength = length - 4;
        for (int i = 0; i < nameLength; i++) {
            if (lower(message.getByte(from + i)) != bytes[at + i]) {
                return false;
            }
        }
        int type = at + nameLength;
        return message.getInt(from + nameLength) == (int) ((bytes[type] & 0xFF) << 24
                | (bytes[type + 1] & 0xFF) << 16 | (bytes[type + 2] & 0xFF) << 8 | (bytes[type + 3] & 0xFF));
    }

    /** The question's name in lower case as text, for logs and tests: {@code example.org.}. */
    static String toString(byte[] question) {
        return toString(question, 0);
    }

    /** The same for a question kept in {@code bytes} from {@code pos}. */
    static String toString(byte[] bytes, int pos) {
        StringBuilder name = new StringBuilder();
        while (bytes[pos] != 0) {
            int length = bytes[pos];
            if (length < 0 || length > 63) {
                return name.append("(compressed)").toString(); // a query may point into its own name
            }
            name.append(new String(Arrays.copyOfRange(bytes, pos + 1, pos + 1 + length),
                    StandardCharsets.ISO_8859_1)).append('.');
            pos += length + 1;
        }
        return name.length() == 0 ? "." : name.toString();
    }

    // Letters only: length octets are at most 63, below 'A' (65), so the name may be lowered whole.
    private static byte lower(byte b) {
        return b >= 'A' && b <= 'Z' ? (byte) (b + ('a' - 'A')) : b;
    }

    // MurmurHash3's finalizer: every input bit reaches every output bit.
    private static long mix(long h) {
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        h *= 0xc4ceb53a87e14d97L;
        return h ^ (h >>> 33);
    }
}
