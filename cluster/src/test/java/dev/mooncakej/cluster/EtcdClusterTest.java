package dev.mooncakej.cluster;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mooncakej.kvtransfer.engine.EtcdProcess;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Membership and election against a real etcd (Debian's etcd-server, started here): a worker's
 * registration appears in the watch and disappears when it deregisters or its lease ends; it
 * re-registers after etcd is stopped and started again; a second candidate becomes leader when the
 * first one's lease ends.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class EtcdClusterTest {
    private static void await(BooleanSupplier ok, String what) throws InterruptedException {
        long until = System.nanoTime() + 20_000_000_000L;
        while (!ok.getAsBoolean()) {
            if (System.nanoTime() > until) throw new AssertionError("timed out waiting for " + what);
            Thread.sleep(50);
        }
    }

    @Test
    void membersAppearLeaveAndComeBackAfterAnEtcdRestart() throws Exception {
        EtcdProcess etcd = new EtcdProcess();
        try {
            ClusterSettings s = ClusterSettings.of(List.of(etcd.url()), "test/", 2L, "127.0.0.1");
            AtomicReference<Map<String, Member>> seen = new AtomicReference<>(Map.of());
            try (EtcdCluster conductor = s.connect();
                    EtcdCluster w1 = s.connect();
                    EtcdCluster w2 = s.connect()) {
                conductor.watchMembers(seen::set);
                w1.register(new Member("prefill", "p1", "http://127.0.0.1:9001", "tiny", 64));
                w2.register(new Member("decode", "d1", "http://127.0.0.1:9002", "tiny", 64));
                await(() -> seen.get().size() == 2, "two members");
                assertThat(seen.get().get("d1").url()).isEqualTo("http://127.0.0.1:9002");
                w1.deregister();
                await(() -> !seen.get().containsKey("p1"), "p1 deregistered");

                etcd.stop();
                Thread.sleep(3000); // longer than the TTL while etcd is down
                etcd = etcd.restart();
                await(() -> seen.get().containsKey("d1"), "d1 still (or again) registered after the etcd restart");
                Thread.sleep(3000);
                assertThat(seen.get())
                        .as("membership after the restart, beyond a TTL")
                        .containsKey("d1");
            }
            // a closed cluster client stops keeping its lease: the member disappears within the TTL
            try (EtcdCluster conductor = s.connect()) {
                AtomicReference<Map<String, Member>> after =
                        new AtomicReference<>(Map.of("x", new Member("decode", "x", "http://h:1", "m", 1)));
                conductor.watchMembers(after::set);
                await(() -> after.get().isEmpty(), "d1 gone when its lease ended");
            }
        } finally {
            etcd.close();
        }
    }

    @Test
    void theNextCandidateLeadsWhenTheLeadersLeaseEnds() throws Exception {
        try (EtcdProcess etcd = new EtcdProcess()) {
            ClusterSettings s = ClusterSettings.of(List.of(etcd.url()), "test/", 2L, null);
            EtcdCluster a = s.connect();
            EtcdCluster b = s.connect();
            CountDownLatch aLeads = new CountDownLatch(1), bLeads = new CountDownLatch(1);
            a.campaign("conductor", "http://a:8000", aLeads::countDown);
            assertThat(aLeads.await(10, TimeUnit.SECONDS)).isTrue();
            b.campaign("conductor", "http://b:8000", bLeads::countDown);
            Thread.sleep(500);
            assertThat(bLeads.getCount()).as("b waits while a leads").isEqualTo(1);
            assertThat(b.leader("conductor")).contains("http://a:8000");
            long t0 = System.nanoTime();
            a.close(); // as if a died: its election lease is revoked (a crash would let it expire within the TTL)
            assertThat(bLeads.await(10, TimeUnit.SECONDS)).isTrue();
            System.out.printf("leadership moved in %.2f s%n", (System.nanoTime() - t0) / 1e9);
            assertThat(b.leader("conductor")).contains("http://b:8000");
            b.close();
        }
    }

    @Test
    void aLeaderWhoseLeaseIsGoneStepsDownInsteadOfLeadingTwice() throws Exception {
        try (EtcdProcess etcd = new EtcdProcess()) {
            ClusterSettings s = ClusterSettings.of(List.of(etcd.url()), "test/", 2L, null);
            try (EtcdCluster a = s.connect();
                    EtcdCluster b = s.connect()) {
                CountDownLatch aLeads = new CountDownLatch(1),
                        aLost = new CountDownLatch(1),
                        bLeads = new CountDownLatch(1);
                a.campaign("conductor", "http://a:8000", aLeads::countDown, aLost::countDown);
                assertThat(aLeads.await(10, TimeUnit.SECONDS)).isTrue();
                b.campaign("conductor", "http://b:8000", bLeads::countDown);
                // a's lease disappears behind its back (as when etcd was away longer than the TTL)
                a.client().getLeaseClient().revoke(a.electionLease()).get(5, TimeUnit.SECONDS);
                assertThat(bLeads.await(10, TimeUnit.SECONDS)).as("b elected").isTrue();
                assertThat(aLost.await(10, TimeUnit.SECONDS))
                        .as("a noticed and stepped down")
                        .isTrue();
            }
        }
    }

    @Test
    void badSettingsNameTheirKey() {
        assertThatThrownBy(() -> ClusterSettings.of(List.of("not a url"), null, null, null)
                        .connect())
                .hasMessageContaining("mooncakej.cluster.etcd-endpoints");
        assertThatThrownBy(() -> ClusterSettings.of(List.of("http://h:1"), "noslash", null, null))
                .hasMessageContaining("mooncakej.cluster.prefix");
        assertThatThrownBy(() -> ClusterSettings.of(List.of("http://h:1"), null, 0L, null))
                .hasMessageContaining("mooncakej.cluster.lease-ttl-seconds");
        assertThatThrownBy(() -> ClusterSettings.of(List.of(), null, null, "bad host!"))
                .hasMessageContaining("mooncakej.cluster.advertise-host");
        assertThatThrownBy(() -> new Member("cook", "n", "http://h:1", "m", 1)).hasMessageContaining("cook");
        assertThat(ClusterSettings.embedded().enabled()).isFalse();
    }
}
