package io.dotproxy.dns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.xbill.DNS.ExtendedErrorCodeOption;

class ExtendedErrorTest {

    /** Code and name as in the registry table of RFC 8914 §5.2. */
    @ParameterizedTest
    @CsvSource({
        "OTHER, 0, Other Error",
        "STALE_ANSWER, 3, Stale Answer",
        "NOT_READY, 14, Not Ready",
        "PROHIBITED, 18, Prohibited",
        "NOT_SUPPORTED, 21, Not Supported",
        "NO_REACHABLE_AUTHORITY, 22, No Reachable Authority",
        "NETWORK_ERROR, 23, Network Error",
        "INVALID_DATA, 24, Invalid Data"
    })
    void codesAndNamesAreTheRfcs(ExtendedError error, int code, String rfcName) {
        assertEquals(code, error.code());
        assertEquals(rfcName, error.rfcName());
    }

    @Test
    void everyCodeHasDnsjavasMnemonic() {
        for (ExtendedError error : ExtendedError.values()) {
            assertEquals(error.name(), ExtendedErrorCodeOption.text(error.code()), error.rfcName());
        }
    }

    @Test
    void tagsAreDistinctLowerCaseSnakeCase() {
        Set<String> tags = new HashSet<>();
        for (ExtendedError error : ExtendedError.values()) {
            assertTrue(error.tag().matches("[a-z0-9]+(_[a-z0-9]+)*"), error.tag());
            assertTrue(tags.add(error.tag()), "duplicate " + error.tag());
        }
        assertEquals("no_reachable_authority", ExtendedError.NO_REACHABLE_AUTHORITY.tag());
    }
}
