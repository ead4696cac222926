package dev.mooncakej.conductor.request;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.stereotype.Component;

/**
 * The token ids of recent chat answers, by their text, so that the next turn of a conversation, which
 * sends the answer back as an assistant message, is tokenized into the very ids that were generated
 * (and whose KV the decode worker put into the pool) rather than a re-tokenization of their text,
 * which need not give the same ids (a BPE tokenizer does not always reproduce the ids a model chose).
 * Bounded (least recently used answers go first); an answer cut by a stop sequence is not kept, as its
 * text no longer matches its ids.
 */
@Component
public class AnswerTokens {
    public static final int MAX_ANSWERS = 4096;
    public static final long MAX_CHARS = 8L << 20;

    private final LinkedHashMap<String, int[]> answers = new LinkedHashMap<>(256, 0.75f, true);
    private long chars;

    public synchronized void remember(String text, int[] ids) {
        remember(null, text, ids);
    }

    /** As above, for one tenant's requests ({@code salt}: its block-key salt; null: the shared space). */
    public synchronized void remember(String salt, String text, int[] ids) {
        if (text.isEmpty() || ids.length == 0 || text.length() > MAX_CHARS / 16) return;
        String key = key(salt, text);
        int[] old = answers.put(key, ids.clone());
        if (old == null) chars += key.length(); // what removal subtracts: the whole key, salt included
        for (Iterator<Map.Entry<String, int[]>> it = answers.entrySet().iterator();
                it.hasNext() && (answers.size() > MAX_ANSWERS || chars > MAX_CHARS); ) {
            chars -= it.next().getKey().length();
            it.remove();
        }
    }

    /** The ids generated for exactly this answer text, or null. */
    public synchronized int[] lookup(String text) {
        return lookup(null, text);
    }

    /** The ids generated for exactly this answer text in this tenant's requests, or null. */
    public synchronized int[] lookup(String salt, String text) {
        int[] ids = answers.get(key(salt, text));
        return ids == null ? null : ids.clone();
    }

    private static String key(String salt, String text) {
        return salt == null ? text : salt + '\u0000' + text;
    }

    public synchronized int size() {
        return answers.size();
    }

    /** Characters held, as the bound counts them. */
    public synchronized long chars() {
        return chars;
    }
}
