package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.mooncakej.engine.generate.ModelGenerator;
import dev.mooncakej.engine.llama.LlamaEngine;
import dev.mooncakej.engine.sampling.SamplingParams;
import dev.mooncakej.engine.sampling.TextGenerator;
import dev.mooncakej.engine.spi.PrefillOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The serving path with the transfer engine restricted to tcp ({@code ./mooncakej up --kv-transports
 * tcp}; the default on one host negotiates shm, which ServingSystemTest covers): short prompts, a long
 * one prefilled in several chunks with a partial last block, and its repeat with a cached prefix, all
 * equal to a single engine's output; the prefill worker's log names the transport.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class TcpServingSystemTest {
    @Test
    void kvOverTcpGivesTheSingleEngineOutput() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-tcp");
        Path model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        try (LocalCluster cluster = LocalCluster.start(model, 1, 1, "--kv-transports", "tcp");
                LlamaEngine reference = new LlamaEngine(LlamaEngine.Config.of(model))) {
            OpenAIClient openai = OpenAIOkHttpClient.builder()
                    .baseUrl(cluster.url() + "/v1")
                    .apiKey("not-needed")
                    .timeout(Duration.ofSeconds(60))
                    .build();
            Random rnd = new Random(5);
            StringBuilder longPrompt = new StringBuilder();
            while (reference.tokenizer().encode(longPrompt.toString()).length < 700)
                longPrompt.append("w").append(rnd.nextInt(500)).append(' ');
            String[] prompts = {"Hello there", "The quick brown fox jumps", longPrompt.toString(), longPrompt.toString()
            };
            for (String prompt : prompts) {
                TextGenerator.Result alone = TextGenerator.generate(
                        reference,
                        reference.tokenizer().encode(prompt),
                        SamplingParams.greedy(16),
                        PrefillOptions.DEFAULT);
                Completion c = openai.completions()
                        .create(CompletionCreateParams.builder()
                                .model("mooncakej-tiny")
                                .prompt(prompt)
                                .maxTokens(16)
                                .temperature(0.0)
                                .build());
                assertThat(c.choices().get(0).text())
                        .as("prompt of %d chars over tcp", prompt.length())
                        .isEqualTo(alone.text());
            }
            String log = Files.readString(LocalCluster.projectRoot().resolve(".cache/logs/prefill-0.log"));
            assertThat(log).contains("over tcp").doesNotContain("over shm");
        }
    }
}
