package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.engine.generate.ModelGenerator;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ./mooncakej up} with a file the engine will not read stops before starting anything and says
 * why, naming the tensor type or the model variant (what {@code model info} reports), instead of
 * workers that fail one by one in their logs.
 */
class ModelRefusalSystemTest {
    @TempDir
    Path dir;

    @Test
    void upRefusesAnUnsupportedTensorTypeByName() throws Exception {
        Path ok = dir.resolve("tiny-k.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY_K, ok);
        byte[] b = Files.readAllBytes(ok);
        byte[] name = "blk.1.ffn_up.weight".getBytes(StandardCharsets.UTF_8);
        int at = indexOf(b, name) + name.length + 4 + 8 + 8; // name, n_dims, dims[0], dims[1]
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(at, 16); // GGML type 16: IQ2_XXS
        Path iq2 = Files.write(dir.resolve("iq2xxs.gguf"), b);
        assertThatThrownBy(() -> LocalCluster.start(iq2, 1, 1, Map.of()).close())
                .hasMessageContaining("will not load; nothing was started")
                .hasMessageContaining("'blk.1.ffn_up.weight'")
                .hasMessageContaining("IQ2_XXS")
                .hasMessageNotContaining("Mooncake-J is up");
    }

    @Test
    void upRefusesAMixtureOfExpertsModelByName() throws Exception {
        Path moe = dir.resolve("moe.gguf");
        ModelGenerator.generate(
                ModelGenerator.preset(ModelGenerator.Preset.TINY), moe, w -> w.putU32("llama.expert_count", 8));
        assertThatThrownBy(() -> LocalCluster.start(moe, 1, 1, Map.of()).close())
                .hasMessageContaining("will not load; nothing was started")
                .hasMessageContaining("mixture-of-experts models are not supported (llama.expert_count = 8)");
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        throw new IllegalArgumentException("not found");
    }
}
