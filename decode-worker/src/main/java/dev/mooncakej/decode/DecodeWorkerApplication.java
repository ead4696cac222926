package dev.mooncakej.decode;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** Decode worker: receives KV into reserved blocks, decodes in one continuous batch, streams tokens. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class DecodeWorkerApplication {
    public static void main(String[] args) {
        SpringApplication.run(DecodeWorkerApplication.class, args);
    }
}
