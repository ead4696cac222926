package dev.mooncakej.conductor.model;

import dev.mooncakej.web.VllmMetrics;
import io.micrometer.core.instrument.config.MeterFilter;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Every meter of the conductor carries the served model's name as {@code model_name}, as the vLLM
 * metrics do: the filter is made from the model (which does not meter), so Spring Boot applies it to
 * the registry before the first meter.
 */
@Configuration(proxyBeanMethods = false)
public class ModelNameTagConfig {
    @Bean
    MeterFilter modelNameTag(ServedModel model) {
        return VllmMetrics.modelNameTag(model.name());
    }
}
