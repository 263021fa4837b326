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
    /** The connection's in-flight limit: the default, and the most a connection may be given. */
    @Param({"100", "65535"})
    int maxInFlight;

    /** Queries already in flight on the connection. */
    @Param({"0", "99"})
    int inFlight;

    private IdTable<Object> table;
    private final Object query = new Object();

    @Setup
    public void fill() {
        table = new IdTable<>(maxInFlight);
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
