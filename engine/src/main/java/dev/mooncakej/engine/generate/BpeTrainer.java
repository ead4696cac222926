package dev.mooncakej.engine.generate;

import dev.mooncakej.engine.tokenizer.BytePairTokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Learns a small byte-level BPE vocabulary from a text: 256 byte tokens, then the most frequent
 * adjacent pair merged, repeatedly (ties broken by the pair's text, so the result is deterministic).
 */
final class BpeTrainer {
    private static final Pattern GPT2 = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", Pattern.UNICODE_CHARACTER_CLASS);

    final List<String> tokens = new ArrayList<>();
    final List<String> merges = new ArrayList<>();

    BpeTrainer(String corpus, int maxMerges) {
        for (int b = 0; b < 256; b++) tokens.add(BytePairTokenizer.encodeBytes(new byte[]{(byte) b}));
        Map<List<String>, Integer> words = new LinkedHashMap<>();
        Matcher m = GPT2.matcher(corpus);
        while (m.find()) {
            String w = BytePairTokenizer.encodeBytes(m.group().getBytes(StandardCharsets.UTF_8));
            List<String> syms = new ArrayList<>();
            for (int i = 0; i < w.length(); i++) syms.add(String.valueOf(w.charAt(i)));
            words.merge(syms, 1, Integer::sum);
        }
        java.util.Set<String> known = new java.util.HashSet<>(tokens);
        for (int step = 0; step < maxMerges; step++) {
            Map<String, Integer> pairs = new HashMap<>();
            for (Map.Entry<List<String>, Integer> e : words.entrySet()) {
                List<String> s = e.getKey();
                for (int i = 0; i + 1 < s.size(); i++) pairs.merge(s.get(i) + " " + s.get(i + 1), e.getValue(), Integer::sum);
            }
            String best = null;
            int bestCount = 1; // a pair seen once is not worth a token
            for (Map.Entry<String, Integer> e : pairs.entrySet()) {
                if (e.getValue() > bestCount || (e.getValue() == bestCount && best != null && e.getKey().compareTo(best) < 0)) {
                    best = e.getKey();
                    bestCount = e.getValue();
                }
            }
            if (best == null) break;
            String[] ab = best.split(" ", 2);
            String merged = ab[0] + ab[1];
            merges.add(best);
            if (known.add(merged)) tokens.add(merged);
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
    }
}
