package dev.mooncakej.engine.generate;

import dev.mooncakej.engine.tokenizer.BytePairTokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Learns a small byte-level BPE vocabulary from a text: 256 byte tokens, then the most frequent
 * adjacent pair merged, repeatedly (ties broken by the pair's text, so the result is deterministic).
 */
final class BpeTrainer {
    private static final Pattern GPT2 = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    final List<String> tokens = new ArrayList<>();
    final List<String> merges = new ArrayList<>();

    BpeTrainer(String corpus, int maxMerges) {
        for (int b = 0; b < 256; b++) tokens.add(BytePairTokenizer.encodeBytes(new byte[] {(byte) b}));
        Map<List<String>, Integer> words = new LinkedHashMap<>();
        Matcher m = GPT2.matcher(corpus);
        while (m.find()) {
            String w = BytePairTokenizer.encodeBytes(m.group().getBytes(StandardCharsets.UTF_8));
            List<String> syms = new ArrayList<>();
            for (int i = 0; i < w.length(); i++) syms.add(String.valueOf(w.charAt(i)));
            words.merge(syms, 1, Integer::sum);
        }
        Set<String> known = new HashSet<>(tokens);
        for (String[] ab : PairMerges.learn(words, maxMerges)) {
            merges.add(ab[0] + " " + ab[1]);
            if (known.add(ab[0] + ab[1])) tokens.add(ab[0] + ab[1]);
        }
    }
}
