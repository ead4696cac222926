package dev.mooncakej.engine.sampling;

import dev.mooncakej.engine.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Turns a stream of token ids into text deltas: bytes are held back until they form whole UTF-8
 * characters, text that could still become a stop sequence is held back, and the first stop
 * sequence ends the output (it is not returned). Used by the conductor to stream text and by
 * {@link TextGenerator}, so both stop at the same place.
 */
public final class TextAssembler {
    private final Tokenizer tokenizer;
    private final List<String> stops;
    private final int holdBack;
    private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    private int emitted; // chars of text already handed out
    private boolean stopped;

    public TextAssembler(Tokenizer tokenizer, List<String> stops) {
        this.tokenizer = tokenizer;
        this.stops = stops;
        this.holdBack = stops.stream().mapToInt(String::length).max().orElse(1) - 1;
    }

    public boolean stopped() {
        return stopped;
    }

    /** All text released so far. */
    public String released() {
        return completeText().substring(0, emitted);
    }

    /** Adds a token; returns the text that can be released now (maybe empty). */
    public String add(int token) {
        if (stopped) return "";
        bytes.writeBytes(tokenizer.tokenBytes(token));
        String text = completeText();
        for (String s : stops) {
            int i = text.indexOf(s, Math.max(0, emitted - s.length() + 1));
            if (i >= 0) {
                stopped = true;
                return release(text, i);
            }
        }
        return release(text, Math.max(emitted, text.length() - holdBack));
    }

    /** At the end: whatever is still held back (stop-sequence prefixes that did not complete). */
    public String flush() {
        if (stopped) return "";
        String text = bytes.toString(StandardCharsets.UTF_8);
        return release(text, text.length());
    }

    private String release(String text, int upTo) {
        if (upTo <= emitted) return "";
        // never split a surrogate pair
        if (upTo < text.length() && Character.isHighSurrogate(text.charAt(upTo - 1))) upTo--;
        String out = text.substring(emitted, upTo);
        emitted = upTo;
        return out;
    }

    /** The text of the bytes so far, without a trailing incomplete UTF-8 sequence. */
    private String completeText() {
        byte[] b = bytes.toByteArray();
        int end = b.length;
        for (int back = 1; back <= Math.min(3, b.length); back++) {
            int c = b[b.length - back] & 0xFF;
            if ((c & 0xC0) == 0x80) continue; // continuation byte
            int need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (need > back) end = b.length - back;
            break;
        }
        return new String(b, 0, end, StandardCharsets.UTF_8);
    }
}
