package dev.mooncakej.conductor;

import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.web.VllmMetrics;
import io.micrometer.core.instrument.config.MeterFilter;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;
import org.springframework.context.annotation.Bean;

/** The conductor: OpenAI-compatible API, tokenization, scheduling onto prefill and decode workers, stream relay. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class ConductorApplication {
    public static void main(String[] args) {
        SpringApplication.run(ConductorApplication.class, args);
    }

    /** Every meter carries the served model's name as {@code model_name}, as vLLM's metrics do. */
    @Bean
    MeterFilter modelNameTag(ServedModel model) {
        return VllmMetrics.modelNameTag(model.name());
    }
}
