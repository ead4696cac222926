package dev.mooncakej.scheduler;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The primitive map agrees with java.util.HashMap over random puts and removals (including growth and backward shifts).
 */
class LongLongMapTest {
    @Test
    void behavesLikeAHashMap() {
        LongLongMap m = new LongLongMap();
        HashMap<Long, Long> ref = new HashMap<>();
        Random rnd = new Random(3);
        for (int i = 0; i < 200_000; i++) {
            long k = rnd.nextInt(5000) * 1024L; // clustered keys provoke collisions
            long v = rnd.nextInt(4) == 0 ? 0 : rnd.nextLong() | 1;
            m.put(k, v);
            if (v == 0) ref.remove(k);
            else ref.put(k, v);
            if (i % 1000 == 0) {
                assertThat(m.size()).isEqualTo(ref.size());
                for (int j = 0; j < 100; j++) {
                    long q = rnd.nextInt(5000) * 1024L;
                    assertThat(m.get(q)).isEqualTo(ref.getOrDefault(q, 0L));
                }
            }
        }
        ref.forEach((k, v) -> assertThat(m.get(k)).isEqualTo(v));
    }
}
