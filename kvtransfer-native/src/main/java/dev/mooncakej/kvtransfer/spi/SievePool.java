package dev.mooncakej.kvtransfer.spi;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * A capped map evicted with SIEVE (Zhang et al., NSDI'24), as Mooncake's endpoint store does: entries
 * in insertion order, a visited bit set on every hit, and a hand that walks from the oldest entry
 * towards the newest, clearing visited bits and evicting the first unvisited entry it meets.
 * Synchronized; eviction hands the evicted value to a callback (an endpoint drains and closes).
 */
public final class SievePool<K, V> {
    private static final class Node<K, V> {
        final K key;
        final V value;
        boolean visited;
        Node<K, V> newer;
        Node<K, V> older;

        Node(K key, V value) {
            this.key = key;
            this.value = value;
        }
    }

    private final int capacity;
    private final Consumer<V> onEvict;
    private final Map<K, Node<K, V>> map = new HashMap<>();
    private Node<K, V> newest;
    private Node<K, V> oldest;
    private Node<K, V> hand;
    private long evictions;

    public SievePool(int capacity, Consumer<V> onEvict) {
        if (capacity < 1) throw new IllegalArgumentException("pool capacity must be >= 1, got " + capacity);
        this.capacity = capacity;
        this.onEvict = onEvict;
    }

    /** The value for the key, created (and an old entry evicted if full) when absent. */
    public V get(K key, Function<K, V> create) {
        V evicted = null;
        V value;
        synchronized (this) {
            Node<K, V> n = map.get(key);
            if (n != null) {
                n.visited = true;
                return n.value;
            }
            if (map.size() >= capacity) evicted = evictOne();
            n = new Node<>(key, create.apply(key));
            map.put(key, n);
            n.older = newest;
            if (newest != null) newest.newer = n;
            newest = n;
            if (oldest == null) oldest = n;
            value = n.value;
        }
        if (evicted != null) onEvict.accept(evicted);
        return value;
    }

    /** Removes the key if it still maps to this value (a broken endpoint leaves the pool). */
    public synchronized boolean remove(K key, V value) {
        Node<K, V> n = map.get(key);
        if (n == null || n.value != value) return false;
        unlink(n);
        return true;
    }

    public synchronized int size() {
        return map.size();
    }

    public synchronized long evictions() {
        return evictions;
    }

    public synchronized boolean contains(K key) {
        return map.containsKey(key);
    }

    private V evictOne() {
        Node<K, V> h = hand != null ? hand : oldest;
        while (h.visited) {
            h.visited = false;
            h = h.newer != null ? h.newer : oldest;
        }
        hand = h.newer;
        unlink(h);
        evictions++;
        return h.value;
    }

    private void unlink(Node<K, V> n) {
        map.remove(n.key);
        if (hand == n) hand = n.newer;
        if (n.older != null) n.older.newer = n.newer;
        else oldest = n.newer;
        if (n.newer != null) n.newer.older = n.older;
        else newest = n.older;
    }

    /** Every value, for closing. */
    public synchronized List<V> values() {
        List<V> out = new ArrayList<>();
        for (Node<K, V> n : map.values()) out.add(n.value);
        return out;
    }
}
