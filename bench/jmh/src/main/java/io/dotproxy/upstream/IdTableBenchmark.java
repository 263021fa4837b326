package io.dotproxy.upstream;

import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/** ID mapping on a DoT connection: take an ID for a query, find and free it on the answer. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class IdTableBenchmark {
    /**
     * The connection's in-flight limit and the queries already in flight on it: the default limit
     * empty and all but full, and the largest limit empty and nearly full (the longest scan).
     */
    @Param({"100/0", "100/99", "65535/0", "65535/60000"})
    String limitAndInFlight;

    private IdTable<Object> table;
    private final Object query = new Object();

    @Setup
    public void fill() {
        String[] parts = limitAndInFlight.split("/");
        table = new IdTable<>(Integer.parseInt(parts[0]));
        int inFlight = Integer.parseInt(parts[1]);
        for (int i = 0; i < inFlight; i++) {
            table.add(new Object());
        }
    }

    @Benchmark
    public Object addMatchRemove() {
        int id = table.add(query);
        Object found = table.get(id);
        table.remove(id, found);
        return found;
    }
}
