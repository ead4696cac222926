package dev.mooncakej.kvtransfer.engine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mooncakej.kvtransfer.spi.TransferConfig;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** A transfer configuration printed (in a log line, an exception) never shows the cluster secret. */
class SecretRedactionTest {
    @Test
    void theSecretIsNotInTheText() {
        String secret = "a-very-secret-cluster-secret-42";
        TransferConfig c = TransferConfig.defaults(secret, Path.of("/dev/shm"));
        assertThat(c.toString())
                .doesNotContain(secret)
                .contains("secret=[redacted]")
                .contains("shmDir=");
        assertThat(c.secret()).isEqualTo(secret);
    }
}
