package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class IdTableTest {
    @Test
    void idsInUseAreUniqueAndAFreedIdComesBackOnlyAfterAllOthers() {
        IdTable<String> table = new IdTable<>();
        int first = table.add("a");
        Set<Integer> ids = new HashSet<>();
        ids.add(first);
        assertTrue(table.remove(first, "a"));
        for (int i = 1; i < IdTable.SIZE; i++) {
            assertTrue(ids.add(table.add("q" + i)), "unique while in use");
        }
        assertEquals(IdTable.SIZE - 1, table.used());
        assertEquals(first, table.add("again"), "the freed ID is the only one left");
        assertThrows(IllegalStateException.class, () -> table.add("one too many"));
    }

    @Test
    void removeFreesOnlyTheSlotOfThatValue() {
        IdTable<String> table = new IdTable<>();
        int id = table.add("mine");
        assertFalse(table.remove(id, "someone else's"));
        assertSame("mine", table.get(id));
        assertTrue(table.remove(id, "mine"));
        assertNull(table.get(id));
        assertEquals(0, table.used());
    }
}
