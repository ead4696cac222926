package dev.mooncakej.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** A member read back from etcd is input like any other: only a plain http://host:port is taken. */
class MemberTest {
    @Test
    void onlyAPlainHostAndPortIsAMemberUrl() {
        for (String ok :
                new String[] {"http://10.1.2.3:8100", "http://decode-0.mooncakej.svc:8200", "https://[::1]:8100"})
            assertThat(new Member("decode", "d", ok, "m", 1).url()).isEqualTo(ok);
        for (String bad : new String[] {
            "http://attacker@10.0.0.1:8100",
            "http://10.0.0.1:8100/steal",
            "http://10.0.0.1:8100?x=1",
            "http://10.0.0.1",
            "http://10.0.0.1:99999",
            "file:///etc/passwd",
            "http://10.0.0.1:8100#frag"
        }) {
            assertThatThrownBy(() -> new Member("decode", "d", bad, "m", 1))
                    .as(bad)
                    .hasMessageContaining("expected http://host:port");
        }
        assertThat(Member.plainUrl("http://10.0.0.1:8000")).isTrue();
        assertThat(Member.plainUrl("http://x@10.0.0.1:8000"))
                .as("a forged leader entry")
                .isFalse();
        assertThat(Member.plainUrl(null)).isFalse();
    }
}
