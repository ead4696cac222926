package dev.mooncakej.simulator;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Fuzzing the trace reader (a trace is external input): any file is either read or refused with an
 * IllegalArgumentException naming the line and the field, never another exception. jqwik, a fixed
 * number of tries.
 */
class TraceFuzzTest {
    @Property(tries = 500)
    void everyTraceIsReadOrRefusedByLineAndField(@ForAll("traces") List<String> lines) throws Exception {
        Path f = Files.createTempFile("mooncakej-trace-fuzz", ".jsonl");
        try {
            Files.write(f, lines);
            try {
                List<TraceRequest> t = Traces.read(f, 1);
                assertThat(t).isNotEmpty();
                assertThat(t).allSatisfy(r -> assertThat(r.inputTokens()).isPositive());
            } catch (IllegalArgumentException e) {
                assertThat(e.getMessage()).contains(f.toString());
            }
        } finally {
            Files.deleteIfExists(f);
        }
    }

    @Provide
    Arbitrary<List<String>> traces() {
        Arbitrary<String> value = Arbitraries.of(
                "0",
                "1",
                "-3",
                "2.5",
                "1e309",
                "null",
                "\"x\"",
                "[]",
                "[1,2]",
                "[1,\"a\"]",
                "{}",
                "99999999999999999999");
        Arbitrary<String> key = Arbitraries.of("timestamp", "input_length", "output_length", "hash_ids", "other");
        Arbitrary<String> member = net.jqwik.api.Combinators.combine(key, value).as((k, v) -> "\"" + k + "\":" + v);
        Arbitrary<String> line = Arbitraries.oneOf(
                member.list().ofMaxSize(6).map(l -> "{" + String.join(",", l) + "}"),
                Arbitraries.of("{\"timestamp\":0,\"input_length\":10,\"output_length\":5,\"hash_ids\":[1,2]}"),
                Arbitraries.strings().ofMaxLength(60));
        return line.list().ofMaxSize(6);
    }
}
