package dev.mooncakej.scheduler;

/**
 * An open-addressing hash map from long to long (0 means absent), so the scheduler's prefix index
 * looks blocks up without boxing: a decision allocates nothing but its result. Written here because
 * the decision is the conductor's hot path; linear probing, backward-shift deletion, power-of-two
 * capacity, load at most 1/2.
 */
final class LongLongMap {
    private long[] keys = new long[1 << 10];
    private long[] values = new long[1 << 10];
    private boolean[] used = new boolean[1 << 10];
    private int size;

    int size() {
        return size;
    }

    long get(long key) {
        int mask = keys.length - 1;
        for (int i = slot(key, mask); used[i]; i = (i + 1) & mask) {
            if (keys[i] == key) return values[i];
        }
        return 0;
    }

    /** Sets the value; 0 removes the key. */
    void put(long key, long value) {
        if (value == 0) {
            remove(key);
            return;
        }
        if (2 * (size + 1) > keys.length) grow();
        int mask = keys.length - 1;
        int i = slot(key, mask);
        while (used[i]) {
            if (keys[i] == key) {
                values[i] = value;
                return;
            }
            i = (i + 1) & mask;
        }
        used[i] = true;
        keys[i] = key;
        values[i] = value;
        size++;
    }

    private void remove(long key) {
        int mask = keys.length - 1;
        int i = slot(key, mask);
        while (used[i] && keys[i] != key) i = (i + 1) & mask;
        if (!used[i]) return;
        used[i] = false;
        size--;
        for (int j = (i + 1) & mask; used[j]; j = (j + 1) & mask) { // backward shift
            int home = slot(keys[j], mask);
            if (((j - home) & mask) >= ((j - i) & mask)) {
                keys[i] = keys[j];
                values[i] = values[j];
                used[i] = true;
                used[j] = false;
                i = j;
            }
        }
    }

    private void grow() {
        long[] k = keys, v = values;
        boolean[] u = used;
        keys = new long[k.length * 2];
        values = new long[k.length * 2];
        used = new boolean[k.length * 2];
        size = 0;
        for (int i = 0; i < k.length; i++) if (u[i]) put(k[i], v[i]);
    }

    private static int slot(long key, int mask) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 32)) & mask;
    }
}
