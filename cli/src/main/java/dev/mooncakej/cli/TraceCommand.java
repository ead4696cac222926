package dev.mooncakej.cli;

import dev.mooncakej.simulator.TraceStats;
import dev.mooncakej.simulator.Traces;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import tools.jackson.databind.json.JsonMapper;

@Command(
        name = "trace",
        description = "Look at request traces.",
        subcommands = {TraceCommand.Stats.class})
final class TraceCommand {

    @Command(
            name = "stats",
            description =
                    "Request count, mean lengths and the prefix-cache hit ratio of one cache of a given capacity.")
    static final class Stats implements Runnable {
        @Parameters(description = "Mooncake trace JSONL")
        Path file;

        @Option(names = "--cache-blocks", defaultValue = "0", description = "capacity in blocks (0: unbounded)")
        int cacheBlocks;

        @Option(names = "--eviction", defaultValue = "lru", description = "lru or lfu")
        String eviction;

        @Option(names = "--block-tokens", defaultValue = "512")
        int blockTokens;

        @Option(names = "--json")
        boolean json;

        @Override
        public void run() {
            if (!eviction.equals("lru") && !eviction.equals("lfu"))
                throw new IllegalArgumentException("--eviction " + eviction + ": expected lru or lfu");
            TraceStats.Result r = TraceStats.of(Traces.read(file, 1), cacheBlocks, eviction.equals("lfu"), blockTokens);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("requests", r.requests());
            m.put("mean_input", Math.round(r.meanInput() * 10) / 10.0);
            m.put("mean_output", Math.round(r.meanOutput() * 10) / 10.0);
            m.put("hit_ratio_blocks", Math.round(r.hitRatioBlocks() * 10000) / 10000.0);
            m.put("hit_ratio_tokens", Math.round(r.hitRatioTokens() * 10000) / 10000.0);
            m.put("cache_blocks", cacheBlocks);
            m.put("eviction", eviction);
            m.put("hit_definition", TraceStats.HIT_DEFINITION);
            if (json) System.out.println(JsonMapper.builder().build().writeValueAsString(m));
            else m.forEach((k, v) -> System.out.printf("%-18s %s%n", k, v));
        }
    }
}
