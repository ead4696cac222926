package dev.mooncakej.engine.generate;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Learns a small SentencePiece-style vocabulary (pieces with scores) from a text: spaces become
 * {@code ▁}, words start with it, frequent adjacent pieces are merged; a piece's score is higher the
 * earlier it was learnt. Characters seen at least twice are pieces; the rest fall back to bytes.
 */
final class SentencePieceTrainer {
    static final char SPACE = '\u2581';

    final List<String> pieces = new ArrayList<>();
    final List<Float> scores = new ArrayList<>();

    SentencePieceTrainer(String corpus, int maxMerges) {
        String text = SPACE + corpus.replace('\n', ' ').replace(' ', SPACE);
        Map<List<String>, Integer> words = new LinkedHashMap<>();
        Map<String, Integer> chars = new LinkedHashMap<>();
        for (String w : text.split("(?=" + SPACE + ")")) {
            if (w.isEmpty()) continue;
            List<String> syms = new ArrayList<>();
            w.codePoints().forEach(cp -> syms.add(new String(Character.toChars(cp))));
            for (String c : syms) chars.merge(c, 1, Integer::sum);
            words.merge(syms, 1, Integer::sum);
        }
        Set<String> known = new LinkedHashSet<>();
        for (int step = 0; step < maxMerges; step++) {
            Map<String, Integer> pairs = new HashMap<>();
            for (Map.Entry<List<String>, Integer> e : words.entrySet()) {
                List<String> s = e.getKey();
                for (int i = 0; i + 1 < s.size(); i++) pairs.merge(s.get(i) + "\u0000" + s.get(i + 1), e.getValue(), Integer::sum);
            }
            String best = null;
            int bestCount = 1;
            for (Map.Entry<String, Integer> e : pairs.entrySet()) {
                if (e.getValue() > bestCount || (e.getValue() == bestCount && best != null && e.getKey().compareTo(best) < 0)) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            if (best == null) break;
            String[] ab = best.split("\u0000", 2);
            String merged = ab[0] + ab[1];
            if (known.add(merged)) {
                pieces.add(merged);
                scores.add((float) -step);
            }
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
        int i = 0;
        for (Map.Entry<String, Integer> c : chars.entrySet()) {
            if (c.getValue() >= 2 && known.add(c.getKey())) {
                pieces.add(c.getKey());
                scores.add(-1000f - i++);
            }
        }
    }
}
