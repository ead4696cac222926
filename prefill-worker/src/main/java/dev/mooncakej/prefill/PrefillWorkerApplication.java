package dev.mooncakej.prefill;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** Prefill worker: computes prompt KV (reusing cached prefix blocks) and streams it to a decode worker. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class PrefillWorkerApplication {
    public static void main(String[] args) {
        SpringApplication.run(PrefillWorkerApplication.class, args);
    }
}
