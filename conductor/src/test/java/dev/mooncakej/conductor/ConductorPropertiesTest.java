package dev.mooncakej.conductor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Bad conductor settings stop start-up with a message naming the key and the expected form. */
class ConductorPropertiesTest {
    private static ConductorProperties props(
            String model, List<String> prefill, String policy, String admission, Double ttft) {
        return new ConductorProperties(
                model,
                null,
                prefill,
                List.of("http://127.0.0.1:1"),
                null,
                null,
                null,
                null,
                policy,
                admission,
                ttft,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null,
                null);
    }

    @Test
    void eachBadValueIsNamed() throws Exception {
        String model = ConductorFixtures.model().toString();
        assertThatThrownBy(() -> props(null, List.of(), null, null, null))
                .hasMessageContaining("mooncakej.conductor.model is missing");
        assertThatThrownBy(() -> props("/nope.gguf", List.of(), null, null, null))
                .hasMessageContaining("mooncakej.conductor.model=/nope.gguf");
        assertThatThrownBy(() -> props(model, List.of("localhost:8100"), null, null, null))
                .hasMessageContaining("mooncakej.conductor.prefill-workers")
                .hasMessageContaining("http://127.0.0.1:8100");
        assertThatThrownBy(() -> props(model, List.of(), "fastest", null, null))
                .hasMessageContaining("mooncakej.conductor.policy")
                .hasMessageContaining("fastest");
        assertThat(props(model, List.of(), "kvcache-centric", null, null).policy())
                .isEqualTo("kvcache-centric");
        assertThatThrownBy(() -> props(model, List.of(), null, "maybe", null))
                .hasMessageContaining("mooncakej.conductor.admission")
                .hasMessageContaining("maybe");
        assertThatThrownBy(() -> props(model, List.of(), null, null, -1.0))
                .hasMessageContaining("mooncakej.conductor.ttft-slo-seconds=-1.0");
        ConductorProperties ok = props(model, List.of(), null, null, null);
        assertThat(ok.policy()).as("Algorithm 1 is the default").isEqualTo("kvcache-centric");
        assertThat(ok.admission()).isEqualTo("none");
        assertThat(ok.ttftSloSeconds()).isEqualTo(30.0);
    }
}
