package dev.mooncakej.engine.generate;

import java.util.ArrayList;
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
        List<String[]> merges = PairMerges.learn(words, maxMerges);
        for (int step = 0; step < merges.size(); step++) {
            String merged = merges.get(step)[0] + merges.get(step)[1];
            if (known.add(merged)) {
                pieces.add(merged);
                scores.add((float) -step);
            }
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
