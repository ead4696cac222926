package dev.mooncakej.bench;

import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.spi.DecodeBatch;
import dev.mooncakej.engine.spi.PrefillOptions;
import dev.mooncakej.engine.spi.Sequence;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One decode step of the built-in engine (batch 1 and 8) and one prefill chunk, on the generated
 * {@code small} model. With {@code -prof gc} it shows what a step allocates (the goal: about 0 B/op).
 * The sequences are rewound after each step so the context length stays constant.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx1g"})
public class EngineStepBenchmark {
    @Param({"1", "8"})
    int batch;

    @Param({"1"})
    int threads;

    private LlamaEngine engine;
    private Sequence[] seqs;
    private DecodeBatch decode;
    private int[] prompt;
    private float[] logits;
    private Path model;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        model = Files.createTempFile("mooncakej-small", ".gguf");
        ModelGenerator.generate(ModelGenerator.Preset.SMALL, model);
        engine = new LlamaEngine(LlamaEngine.Config.of(model)
                .withThreads(threads)
                .withMaxRows(128)
                .withKvBlocks(256));
        int vocab = engine.info().vocabSize();
        prompt = new int[128];
        for (int i = 0; i < prompt.length; i++) prompt[i] = 1 + (i * 7919) % (vocab - 16);
        logits = new float[vocab];
        seqs = new Sequence[batch];
        for (int i = 0; i < batch; i++) {
            seqs[i] = engine.newSequence();
            engine.prefill(seqs[i], prompt, PrefillOptions.DEFAULT, logits);
        }
        decode = new DecodeBatch(batch, vocab);
    }

    @Benchmark
    public float decodeStep() {
        decode.clear();
        for (int i = 0; i < batch; i++) decode.add(seqs[i], 42);
        engine.decode(decode);
        for (int i = 0; i < batch; i++) seqs[i].setLength(seqs[i].length() - 1); // rewind: constant context
        return decode.logits()[0];
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        for (Sequence s : seqs) s.release();
        engine.close();
        Files.deleteIfExists(model);
    }
}
