package dev.mooncakej.web;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Which raw paths are canonical: exactly the ones routing matches as written. */
class CanonicalPathFilterTest {
    @Test
    void routesAsWrittenAreCanonical() {
        for (String p : new String[] {
            "/",
            "/v1/models",
            "/v1/chat/completions",
            "/internal/leader",
            "/actuator/prometheus",
            "/internal/leader/",
            "/v1/models/meta-llama:Llama-3.1@q4_k_m",
            "/a.b/c..d/.e"
        }) assertThat(CanonicalPathFilter.problem(p)).as(p).isNull();
    }

    @Test
    void everyEncodingThatRoutingWouldUndoIsRefused() {
        for (String p : new String[] {
            "/%69nternal/leader",
            "/%2569nternal/leader",
            "/internal%2Fleader",
            "/internal%2fleader",
            "/internal;a/leader",
            "/internal/leader;jsessionid=1",
            "//internal/leader",
            "/internal//leader",
            "/./internal/leader",
            "/x/../internal/leader",
            "/internal/leader/..",
            "/internal/.",
            "/internal\\leader",
            "/internal/le ader",
            "/internal/l\u00e9ader",
            "/internal/\"leader",
            "internal/leader",
            ""
        }) assertThat(CanonicalPathFilter.problem(p)).as(p).isNotNull();
    }

    @Test
    void theInternalPlaneIsMatchedWithoutRegardToCase() {
        assertThat(InternalPlaneFilter.internal("/INTERNAL/leader")).isTrue();
        assertThat(InternalPlaneFilter.internal("/Actuator/Mappings")).isTrue();
        assertThat(InternalPlaneFilter.internal("/internalx")).isFalse();
        assertThat(InternalPlaneFilter.internal("/v1/models")).isFalse();
    }
}
