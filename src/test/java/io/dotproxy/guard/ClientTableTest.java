package io.dotproxy.guard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ClientTableTest {
    @Test
    void findsWhatWasAddedByKeyAndFamily() {
        ClientTable table = new ClientTable(10);
        Client v4 = table.add(0x0A000001L, false);
        Client v6 = table.add(0x0A000001L, true); // the same bits, the other family
        assertNotSame(v4, v6);
        assertSame(v4, table.find(0x0A000001L, false));
        assertSame(v6, table.find(0x0A000001L, true));
        assertNull(table.find(0x0A000002L, false));
        assertEquals(2, table.size());
    }

    @Test
    void theOldestIsTheLeastRecentlySeen() {
        ClientTable table = new ClientTable(10);
        Client a = table.add(1, false);
        Client b = table.add(2, false);
        Client c = table.add(3, false);
        assertSame(a, table.oldest());
        table.find(1, false);
        assertSame(b, table.oldest());
        table.find(2, false);
        assertSame(c, table.oldest());
        table.remove(c);
        assertSame(a, table.oldest());
        table.remove(a);
        table.remove(b);
        assertNull(table.oldest());
        assertEquals(0, table.size());
    }

    @Test
    void isBoundedAndReusesWhatWasRemoved() {
        ClientTable table = new ClientTable(2);
        table.add(1, false);
        Client b = table.add(2, true);
        assertTrue(table.isFull());
        assertThrows(IllegalStateException.class, () -> table.add(3, false));
        table.remove(b);
        assertFalse(table.isFull());
        assertSame(b, table.add(3, false), "the removed client is reused");
        assertSame(b, table.find(3, false));
        assertNull(table.find(2, true));
    }

    @Test
    void manyClientsSurviveGrowthAndRemovalsFromTheMiddleOfChains() {
        int count = 50_000;
        ClientTable table = new ClientTable(count);
        List<Client> clients = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            // Keys alike but for a few high bits, as masked prefixes are.
            clients.add(table.add((long) i << 40, i % 2 == 0));
        }
        assertEquals(count, table.size());
        for (int i = 0; i < count; i += 3) {
            table.remove(clients.get(i));
        }
        for (int i = 0; i < count; i++) {
            Client found = table.find((long) i << 40, i % 2 == 0);
            if (i % 3 == 0) {
                assertNull(found, "removed " + i);
            } else {
                assertSame(clients.get(i), found, "kept " + i);
            }
        }
        assertEquals(count - (count + 2) / 3, table.size());
        // Every kept client, oldest first, in the order last found.
        int walked = 0;
        for (Client c = table.oldest(); c != null; c = c.newer) {
            walked++;
        }
        assertEquals(table.size(), walked);
    }
}
