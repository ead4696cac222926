package dev.mooncakej.simulator;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.GZIPInputStream;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Reads Mooncake trace JSONL, plain or gzipped ({@code {"timestamp": ms, "input_length": N, "output_length": M,
 * "hash_ids": [...]}} per line, timestamps sorted) with a speed factor, and makes Poisson workloads.
 * A bad line fails with its number, the field and the expected form.
 */
public final class Traces {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private Traces() {}

    public static List<TraceRequest> read(Path file, double speed) {
        if (!(speed > 0))
            throw new IllegalArgumentException(
                    "--speed " + speed + ": expected a positive factor (2 replays twice as fast)");
        List<TraceRequest> out = new ArrayList<>();
        try (BufferedReader r = open(file)) {
            String line;
            int no = 0;
            double last = Double.NEGATIVE_INFINITY;
            while ((line = r.readLine()) != null) {
                no++;
                if (line.isBlank()) continue;
                JsonNode n;
                try {
                    n = JSON.readTree(line);
                } catch (JacksonException e) {
                    throw bad(
                            file,
                            no,
                            "the line",
                            "is not JSON; expected {\"timestamp\", \"input_length\", \"output_length\", \"hash_ids\"}");
                }
                double ts = number(file, no, n, "timestamp");
                if (ts < last)
                    throw bad(
                            file,
                            no,
                            "timestamp",
                            ts + " is before the previous line's " + last + "; expected sorted timestamps in ms");
                last = ts;
                int in = (int) number(file, no, n, "input_length");
                int outLen = (int) number(file, no, n, "output_length");
                if (in < 1) throw bad(file, no, "input_length", in + "; expected a positive token count");
                if (outLen < 1) throw bad(file, no, "output_length", outLen + "; expected a positive token count");
                JsonNode h = n.get("hash_ids");
                if (h == null || !h.isArray())
                    throw bad(file, no, "hash_ids", "is missing; expected an array of block ids");
                long[] blocks = new long[h.size()];
                for (int i = 0; i < blocks.length; i++) {
                    if (!h.get(i).isIntegralNumber())
                        throw bad(file, no, "hash_ids[" + i + "]", h.get(i) + "; expected an integer block id");
                    blocks[i] = h.get(i).asLong();
                }
                out.add(new TraceRequest(out.size(), ts / 1000.0 / speed, in, outLen, blocks));
            }
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException(file
                    + ": no such trace file; the paper's traces are in ../shared/traces/ "
                    + "(conversation_trace.jsonl, synthetic_trace.jsonl)");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
        if (out.isEmpty()) throw new IllegalArgumentException(file + ": the trace has no requests");
        return out;
    }

    /**
     * Poisson arrivals at {@code rate} per second with input lengths uniform in [inMin, inMax], outputs in
     * [outMin, outMax], and a shared prefix of {@code cacheRatio} of each prompt drawn from a few
     * popular prefixes (so about that share of tokens can hit a cache).
     */
    public static List<TraceRequest> poisson(
            int count,
            double rate,
            int inMin,
            int inMax,
            int outMin,
            int outMax,
            double cacheRatio,
            int blockTokens,
            long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<TraceRequest> out = new ArrayList<>();
        double t = 0;
        long nextBlock = 1_000_000;
        for (int i = 0; i < count; i++) {
            t += -Math.log(1 - rnd.nextDouble()) / rate;
            int in = inMin + rnd.nextInt(inMax - inMin + 1);
            int outLen = outMin + rnd.nextInt(outMax - outMin + 1);
            int blocks = (in + blockTokens - 1) / blockTokens;
            int shared = (int) Math.round(blocks * cacheRatio);
            long family = rnd.nextInt(8); // eight popular prefixes
            long[] ids = new long[blocks];
            for (int b = 0; b < blocks; b++) ids[b] = b < shared ? family * 100_000 + b : nextBlock++;
            out.add(new TraceRequest(i, t, in, outLen, ids));
        }
        return out;
    }

    /** The file's lines; a name ending in .gz is read through gunzip (the published traces compress 4:1). */
    private static BufferedReader open(Path file) throws IOException {
        if (!file.getFileName().toString().endsWith(".gz"))
            return Files.newBufferedReader(file, StandardCharsets.UTF_8);
        return new BufferedReader(
                new InputStreamReader(new GZIPInputStream(Files.newInputStream(file)), StandardCharsets.UTF_8));
    }

    private static double number(Path file, int no, JsonNode n, String field) {
        JsonNode v = n.get(field);
        if (v == null || !v.isNumber())
            throw bad(file, no, field, (v == null ? "is missing" : v + " is not a number") + "; expected a number");
        return v.asDouble();
    }

    private static IllegalArgumentException bad(Path file, int line, String field, String problem) {
        return new IllegalArgumentException(file + ":" + line + ": " + field + " " + problem);
    }

    /**
     * Requests {@code offset} .. {@code offset + count - 1} of a trace ({@code count} 0: to the end),
     * renumbered from 0 and with arrivals counted from the first one's, so a window from the middle of
     * a trace starts at once; an offset past the end is refused by name.
     */
    public static List<TraceRequest> window(List<TraceRequest> all, int offset, int count) {
        if (offset < 0) throw new IllegalArgumentException("--offset " + offset + ": expected >= 0");
        if (count < 0) throw new IllegalArgumentException("--requests " + count + ": expected >= 0 (0: all)");
        if (offset >= all.size())
            throw new IllegalArgumentException(
                    "--offset " + offset + ": the trace has only " + all.size() + " requests");
        int end = count == 0 ? all.size() : (int) Math.min(all.size(), (long) offset + count);
        double t0 = all.get(offset).arrival();
        List<TraceRequest> out = new ArrayList<>(end - offset);
        for (int i = offset; i < end; i++) {
            TraceRequest r = all.get(i);
            out.add(new TraceRequest(i - offset, r.arrival() - t0, r.inputTokens(), r.outputTokens(), r.blocks()));
        }
        return out;
    }
}
