package dev.mooncakej.engine.generate;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The merge loop both vocabulary trainers share: repeatedly merge the most frequent adjacent pair of
 * symbols over a bag of words (ties broken by the pair's text, so the result is deterministic), until
 * {@code maxMerges} merges or no pair occurs twice.
 */
final class PairMerges {
    private PairMerges() {}

    /** The merges in the order learnt, each as {left, right}. */
    static List<String[]> learn(Map<List<String>, Integer> words, int maxMerges) {
        List<String[]> merges = new ArrayList<>();
        for (int step = 0; step < maxMerges; step++) {
            Map<String, Integer> pairs = new HashMap<>();
            for (Map.Entry<List<String>, Integer> e : words.entrySet()) {
                List<String> s = e.getKey();
                for (int i = 0; i + 1 < s.size(); i++)
                    pairs.merge(s.get(i) + "\u0000" + s.get(i + 1), e.getValue(), Integer::sum);
            }
            String best = null;
            int bestCount = 1; // a pair seen once is not worth a token
            for (Map.Entry<String, Integer> e : pairs.entrySet()) {
                if (e.getValue() > bestCount
                        || (e.getValue() == bestCount
                                && best != null
                                && e.getKey().compareTo(best) < 0)) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            if (best == null) break;
            String[] ab = best.split("\u0000", 2);
            merges.add(ab);
            String merged = ab[0] + ab[1];
            Map<List<String>, Integer> next = new LinkedHashMap<>();
            for (Map.Entry<List<String>, Integer> e : words.entrySet()) {
                List<String> s = new ArrayList<>(e.getKey());
                for (int i = 0; i + 1 < s.size(); i++) {
                    if (s.get(i).equals(ab[0]) && s.get(i + 1).equals(ab[1])) {
                        s.set(i, merged);
                        s.remove(i + 1);
                    }
                }
                next.merge(s, e.getValue(), Integer::sum);
            }
            words = next;
        }
        return merges;
    }
}
