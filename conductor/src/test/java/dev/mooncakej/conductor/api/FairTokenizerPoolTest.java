package dev.mooncakej.conductor.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import reactor.core.Disposable;

/** The tokenizer pool takes the keys in turn, bounds its queues and drops what nobody waits for. */
@Timeout(30)
class FairTokenizerPoolTest {
    @Test
    void aFloodingKeyDelaysAnotherKeyByOneTaskNotByItsBacklog() throws Exception {
        try (var pool = new FairTokenizerPool(1, 256, 64)) {
            CountDownLatch gate = new CountDownLatch(1);
            List<String> order = new CopyOnWriteArrayList<>();
            pool.submit("a", () -> {
                        gate.await();
                        order.add("a-blocker");
                        return 0;
                    })
                    .subscribe();
            Thread.sleep(50); // the one thread is busy with a's first prompt
            for (int i = 0; i < 20; i++) {
                int n = i;
                pool.submit("a", () -> order.add("a" + n)).subscribe();
            }
            var b = pool.submit("b", () -> order.add("b")).toFuture();
            gate.countDown();
            b.get(10, TimeUnit.SECONDS);
            assertThat(order.indexOf("b"))
                    .as("b's prompt waited for a's running prompt and at most one more of a's, not a's 20: %s", order)
                    .isLessThanOrEqualTo(2);
        }
    }

    @Test
    void queuesAreBoundedInAllAndPerKey() throws Exception {
        try (var pool = new FairTokenizerPool(1, 4, 2)) {
            CountDownLatch gate = new CountDownLatch(1);
            pool.submit("a", () -> gate.await(10, TimeUnit.SECONDS)).subscribe();
            Thread.sleep(50);
            pool.submit("a", () -> 1).subscribe();
            pool.submit("a", () -> 1).subscribe();
            assertThatThrownBy(() -> pool.submit("a", () -> 1).block(Duration.ofSeconds(5)))
                    .isInstanceOf(RejectedExecutionException.class);
            pool.submit("b", () -> 1).subscribe();
            pool.submit("c", () -> 1).subscribe();
            assertThatThrownBy(() -> pool.submit("d", () -> 1).block(Duration.ofSeconds(5)))
                    .as("four waiting in all")
                    .isInstanceOf(RejectedExecutionException.class);
            gate.countDown();
        }
    }

    @Test
    void aTaskWhoseClientLeftIsNotRun() throws Exception {
        try (var pool = new FairTokenizerPool(1, 16, 16)) {
            CountDownLatch gate = new CountDownLatch(1);
            pool.submit("a", () -> gate.await(10, TimeUnit.SECONDS)).subscribe();
            Thread.sleep(50);
            AtomicInteger ran = new AtomicInteger();
            Disposable gone = pool.submit("a", ran::incrementAndGet).subscribe();
            gone.dispose();
            gate.countDown();
            assertThat(pool.submit("a", () -> "after").block(Duration.ofSeconds(5)))
                    .isEqualTo("after");
            assertThat(ran.get()).isZero();
            assertThat(pool.queued()).isZero();
        }
    }
}
