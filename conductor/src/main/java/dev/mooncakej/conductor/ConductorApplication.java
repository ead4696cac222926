package dev.mooncakej.conductor;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** The conductor: OpenAI-compatible API, tokenization, scheduling onto prefill and decode workers, stream relay. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class ConductorApplication {
    public static void main(String[] args) {
        SpringApplication.run(ConductorApplication.class, args);
    }
}
