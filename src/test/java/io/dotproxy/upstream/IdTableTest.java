package io.dotproxy.upstream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class IdTableTest {
    @Test
    void idsInUseAreUniqueAndAFreedIdComesBackOnlyAfterAllOthers() {
        IdTable<String> table = new IdTable<>(IdTable.ID_SPACE);
        int first = table.add("a");
        Set<Integer> ids = new HashSet<>();
        ids.add(first);
        assertTrue(table.remove(first, "a"));
        for (int i = 1; i < IdTable.ID_SPACE; i++) {
            assertTrue(ids.add(table.add("q" + i)), "unique while in use");
        }
        assertEquals(IdTable.ID_SPACE - 1, table.used());
        assertEquals(first, table.add("again"), "the freed ID is the only one left");
        assertThrows(IllegalStateException.class, () -> table.add("one too many"));
    }

    @Test
    void withQueriesHeldAnIdComesBackOnlyAfterTheSequenceWentRoundAndAtLeastTheDocumentedNumberOfOthers() {
        int capacity = 100;
        IdTable<String> table = new IdTable<>(capacity);
        // Queries held for a long time, spread over the table, while thousands of others come and go.
        Map<Integer, String> held = new HashMap<>();
        Map<Integer, Integer> handedOutAt = new HashMap<>();
        int handedOut = 0;
        int previous = -1;
        int minimumBetweenReuses = IdTable.ID_SPACE * (table.slots() - capacity) / table.slots();
        for (int i = 0; i < 4 * IdTable.ID_SPACE; i++) {
            String query = "q" + i;
            int id = table.add(query);
            if (previous >= 0) {
                int step = (id - previous) & (IdTable.ID_SPACE - 1);
                assertTrue(step >= 1 && step <= capacity, "the sequence only moves forward, skipping taken slots: " + step);
            }
            previous = id;
            Integer last = handedOutAt.put(id, handedOut);
            if (last != null) {
                assertTrue(handedOut - last >= minimumBetweenReuses,
                        "ID " + id + " came back after " + (handedOut - last) + " others");
            }
            handedOut++;
            if (i % 97 == 0 && held.size() < capacity - 1) {
                held.put(id, query);
            } else {
                assertTrue(table.remove(id, query));
            }
        }
        assertEquals(capacity - 1, held.size());
        held.forEach((id, query) -> assertSame(query, table.get(id), "a held query keeps its ID"));
        assertEquals(capacity - 1, table.used());
    }

    @Test
    void theTableIsTwiceTheCapacityRoundedUpToAPowerOfTwoAndAtMostEveryId() {
        assertEquals(2, new IdTable<>(1).slots());
        assertEquals(256, new IdTable<>(100).slots(), "a few KiB per connection, not 65,536 slots");
        assertEquals(32_768, new IdTable<>(16_384).slots());
        assertEquals(IdTable.ID_SPACE, new IdTable<>(16_385).slots());
        assertEquals(IdTable.ID_SPACE, new IdTable<>(65_535).slots());
        assertThrows(IllegalArgumentException.class, () -> new IdTable<>(0));
        assertThrows(IllegalArgumentException.class, () -> new IdTable<>(IdTable.ID_SPACE + 1));
    }

    @Test
    void anAnswerWithAnotherIdOfTheSameSlotFindsNothing() {
        IdTable<String> table = new IdTable<>(4);
        assertEquals(8, table.slots(), "twice the capacity, rounded up to a power of two");
        int held = table.add("slow query");
        int sameSlot = (held + table.slots()) & (IdTable.ID_SPACE - 1);
        assertNull(table.get(sameSlot), "a late or forged ID that shares the slot is not the query in it");
        assertFalse(table.remove(sameSlot, "slow query"));
        // The held query keeps its slot while thousands of others come and go around it.
        for (int i = 0; i < 3 * IdTable.ID_SPACE; i++) {
            String query = "q" + i;
            int id = table.add(query);
            assertTrue((id & (table.slots() - 1)) != (held & (table.slots() - 1)), "a taken slot is skipped");
            assertTrue(table.remove(id, query));
        }
        assertSame("slow query", table.get(held));
        assertEquals(1, table.used());
    }

    @Test
    void aFullTableRefusesMore() {
        IdTable<String> table = new IdTable<>(100);
        for (int i = 0; i < table.slots(); i++) {
            table.add("q" + i);
        }
        assertThrows(IllegalStateException.class, () -> table.add("one too many"));
    }

    @Test
    void removeFreesOnlyTheSlotOfThatValue() {
        IdTable<String> table = new IdTable<>(100);
        int id = table.add("mine");
        assertFalse(table.remove(id, "someone else's"));
        assertSame("mine", table.get(id));
        assertTrue(table.remove(id, "mine"));
        assertNull(table.get(id));
        assertEquals(0, table.used());
    }
}
