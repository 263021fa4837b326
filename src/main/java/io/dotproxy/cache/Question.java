package io.dotproxy.cache;

import io.dotproxy.dns.Header;
import io.dotproxy.dns.Message;
import io.netty.buffer.ByteBuf;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
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
    private static final VarHandle OCTETS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);

    private Question() {}

    /**
     * The key of a query, or of an answer, whose view is {@code parsed} (one question). The name is
     * read eight octets at a time (a hit reads it twice: here and in {@link #matches}), each
     * {@code ByteBuf} read being bounds- and reference-checked.
     */
    static long key(ByteBuf message, Message parsed) {
        int from = parsed.questionStart();
        int nameLength = parsed.questionEnd() - 4 - from;
        long hash = SEED ^ nameLength;
        int i = 0;
        for (; i + Long.BYTES <= nameLength; i += Long.BYTES) {
            hash = word(hash, lower(message.getLong(from + i)));
        }
        if (i < nameLength) {
            hash = word(hash, lower(tail(message, from, nameLength)));
        }
        hash = word(hash, message.getInt(from + nameLength)); // type and class
        hash = word(hash, bits(parsed));
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
        int i = 0;
        for (; i + Long.BYTES <= nameLength; i += Long.BYTES) {
            if (lower(message.getLong(from + i)) != (long) OCTETS.get(bytes, at + i)) {
                return false;
            }
        }
        if (i < nameLength) {
            long stored = 0;
            for (int j = i; j < nameLength; j++) {
                stored = stored << 8 | (bytes[at + j] & 0xFF);
            }
            if (lower(tail(message, from, nameLength)) != stored) {
                return false;
            }
        }
        return message.getInt(from + nameLength) == (int) INT.get(bytes, at + nameLength);
    }

    /**
     * The last {@code nameLength % 8} octets of the name at {@code from}, in the low octets of a
     * long. Read as one long that ends with the name: it starts at most 7 octets before the name,
     * inside the 12-octet header.
     */
    private static long tail(ByteBuf message, int from, int nameLength) {
        int octets = nameLength % Long.BYTES;
        return message.getLong(from + nameLength - Long.BYTES) & (-1L >>> (Long.SIZE - Byte.SIZE * octets));
    }

    // FNV-1a's step over a word, and a shift so that the high bits of each word reach the low ones.
    private static long word(long hash, long word) {
        hash = (hash ^ word) * PRIME;
        return hash ^ (hash >>> 29);
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

    /** {@link #lower(byte)} on each of eight octets at once (no carry crosses from one to the next). */
    static long lower(long octets) {
        long low7 = octets & 0x7F7F7F7F7F7F7F7FL;
        long atLeastA = low7 + 0x3F3F3F3F3F3F3F3FL; // top bit set where the low 7 bits are >= 'A' (0x41)
        long aboveZ = low7 + 0x2525252525252525L; // top bit set where they are > 'Z' (0x5A)
        long upper = atLeastA & ~aboveZ & ~octets & 0x8080808080808080L; // and the octet is below 0x80
        return octets | (upper >>> 2); // 'A'..'Z' have bit 0x20 clear: setting it adds 0x20
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
