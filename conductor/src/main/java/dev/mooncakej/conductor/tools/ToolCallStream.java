package dev.mooncakej.conductor.tools;

import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Tool calls parsed out of generated text as it streams. Each {@link #feed} re-reads the text so far
 * (answers are short; this keeps the parser simple and its output prefix-stable) and returns what is
 * new since the last call: content text that cannot be the start of a call, a call's id and name once
 * its name is complete, and its arguments as they grow (the raw JSON text the model wrote, so the
 * streamed fragments join into exactly the non-streamed arguments). {@link #finish} releases what was
 * held back; a block that never became a call (no name) is given back as content.
 */
public final class ToolCallStream {
    /** What a step releases. */
    public sealed interface Out {}

    /** Content text. */
    public record Text(String text) implements Out {}

    /** A call begins: its index among the answer's calls, its id, the function's name. */
    public record Start(int index, String id, String name) implements Out {}

    /** More of call {@code index}'s arguments. */
    public record Args(int index, String fragment) implements Out {}

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final SecureRandom IDS = new SecureRandom();
    private static final String ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    private final ToolCallFormat format;
    private final String named;
    private final StringBuilder buf = new StringBuilder();
    private int textSent;
    private final List<String> ids = new ArrayList<>();
    private final List<Integer> argsSent = new ArrayList<>();
    private final Map<Integer, Integer> callOf = new HashMap<>(); // parsed call slot -> emitted index

    /** {@code named}: the function {@link ToolCallFormat#ARGUMENTS} writes the arguments of, else null. */
    public ToolCallStream(ToolCallFormat format, String named) {
        this.format = format;
        this.named = named;
    }

    /** Appends generated text; returns what it releases. */
    public List<Out> feed(String text) {
        buf.append(text);
        return diff(parse(buf.toString(), false));
    }

    /** The text has ended: releases the rest. */
    public List<Out> finish() {
        return diff(parse(buf.toString(), true));
    }

    /** Calls released so far. */
    public int calls() {
        return ids.size();
    }

    /** One call as parsed: name (null until complete), arguments so far (null until they begin), whether done. */
    record Call(String name, String args, boolean complete, String raw) {}

    record Parse(String content, List<Call> calls) {}

    private List<Out> diff(Parse p) {
        List<Out> out = new ArrayList<>();
        StringBuilder content = new StringBuilder(p.content());
        List<Call> calls = p.calls();
        for (int slot = 0; slot < calls.size(); slot++) {
            Call c = calls.get(slot);
            Integer index = callOf.get(slot);
            if (index == null && c.name() != null) {
                index = ids.size();
                callOf.put(slot, index);
                ids.add(newId());
                argsSent.add(0);
                if (content.length() > textSent) { // content before the call goes first
                    out.add(new Text(content.substring(textSent)));
                    textSent = content.length();
                }
                out.add(new Start(index, ids.get(index), c.name()));
            }
            if (index == null) {
                if (c.raw() != null) content.append(c.raw()); // the end, and never a call: it was text
                continue;
            }
            String args = c.args() == null ? (c.complete() ? "{}" : "") : c.args();
            int sent = argsSent.get(index);
            if (args.length() > sent) {
                out.add(new Args(index, args.substring(sent)));
                argsSent.set(index, args.length());
            }
        }
        if (content.length() > textSent) {
            out.add(new Text(content.substring(textSent)));
            textSent = content.length();
        }
        return out;
    }

    private static String newId() {
        StringBuilder sb = new StringBuilder("call_");
        for (int i = 0; i < 24; i++) sb.append(ID_CHARS.charAt(IDS.nextInt(ID_CHARS.length())));
        return sb.toString();
    }

    Parse parse(String s, boolean end) {
        return switch (format) {
            case HERMES -> tagged(s, end, "<tool_call>", "</tool_call>");
            case MISTRAL -> mistral(s, end);
            case LLAMA3_JSON -> llama(s, end);
            case CALL_ARRAY -> {
                int i = skipWs(s, 0);
                List<Call> calls = new ArrayList<>();
                if (i < s.length() && s.charAt(i) == '[') array(s, i, end, calls);
                yield new Parse(i < s.length() && s.charAt(i) != '[' ? s : "", calls);
            }
            case ARGUMENTS -> {
                int i = skipWs(s, 0);
                int stop = i < s.length() ? skipValue(s, i) : -1;
                String args = i >= s.length() ? null : stop < 0 ? s.substring(i) : s.substring(i, stop);
                yield new Parse("", List.of(new Call(named, args, end || stop >= 0, null)));
            }
        };
    }

    /** Hermes: calls in {@code open ... close} blocks, content around them. */
    private static Parse tagged(String s, boolean end, String open, String close) {
        StringBuilder content = new StringBuilder();
        List<Call> calls = new ArrayList<>();
        int pos = 0;
        while (true) {
            int at = s.indexOf(open, pos);
            if (at < 0) {
                content.append(end ? s.substring(pos) : s.substring(pos, s.length() - heldBack(s, pos, open)));
                break;
            }
            content.append(s, pos, at);
            int i = skipWs(s, at + open.length());
            if (i >= s.length() || s.charAt(i) != '{') {
                if (end) calls.add(new Call(null, null, false, s.substring(at)));
                else if (i < s.length()) { // not JSON after the tag: the block is text
                    content.append(s, at, i);
                    pos = i;
                    continue;
                }
                break;
            }
            ObjectScan o = scan(s, i, end);
            Call c = o.call(s, end);
            int stop = o.end < 0 ? s.length() : o.end;
            int closeAt = s.indexOf(close, stop);
            boolean closed = closeAt >= 0 && s.substring(stop, closeAt).isBlank();
            int blockEnd = o.end < 0 ? s.length() : closed ? closeAt + close.length() : stop;
            calls.add(c.name() == null && end ? new Call(null, null, false, s.substring(at, blockEnd)) : c);
            if (o.end < 0) break;
            if (closed) pos = closeAt + close.length();
            else if (end) pos = stop;
            else break;
        }
        return new Parse(content.toString(), calls);
    }

    /** Mistral: {@code [TOOL_CALLS]} then a JSON array of calls, or {@code name[ARGS]{...}} per call. */
    private static Parse mistral(String s, boolean end) {
        String marker = "[TOOL_CALLS]";
        int at = s.indexOf(marker);
        int first = skipWs(s, 0);
        int next = first < s.length() ? skipWs(s, first + 1) : s.length();
        if (at < 0 && first < s.length() && s.charAt(first) == '[' && next >= s.length())
            return new Parse(end ? s : "", List.of()); // a bare '[': the calls' array, or the marker, or text
        if (at < 0 && first < s.length() && s.charAt(first) == '[' && s.charAt(next) == '{') {
            // [TOOL_CALLS] is a control token in Mistral's vocabularies, so it is not in the text: an
            // answer that is a JSON array of named calls is the calls
            List<Call> calls = new ArrayList<>();
            array(s, first, end, calls);
            boolean named = calls.stream().anyMatch(c -> c.name() != null);
            if (named) return new Parse("", calls);
            return new Parse(end ? s : "", List.of()); // held until it is known to be text
        }
        if (at < 0) return new Parse(end ? s : s.substring(0, s.length() - heldBack(s, 0, marker)), List.of());
        List<Call> calls = new ArrayList<>();
        int i = skipWs(s, at + marker.length());
        if (i < s.length() && s.charAt(i) == '[') array(s, i, end, calls);
        else {
            int pos = at;
            while (pos >= 0 && pos < s.length()) {
                int nameFrom = s.startsWith(marker, pos) ? pos + marker.length() : pos;
                int argsAt = s.indexOf("[ARGS]", nameFrom);
                if (argsAt < 0) {
                    if (end && nameFrom < s.length()) calls.add(new Call(null, null, false, s.substring(pos)));
                    break;
                }
                String name = s.substring(nameFrom, argsAt).trim();
                int j = skipWs(s, argsAt + 6);
                int stop = j < s.length() ? skipValue(s, j) : -1;
                String args = j >= s.length() ? null : stop < 0 ? s.substring(j) : s.substring(j, stop);
                calls.add(new Call(name.isEmpty() ? null : name, args, stop >= 0 || end, null));
                if (stop < 0) break;
                pos = s.indexOf(marker, stop);
            }
        }
        return new Parse(s.substring(0, at), calls);
    }

    /** Llama 3.x: the whole answer is one or more call objects (joined by {@code ;}), or it is all text. */
    private static Parse llama(String s, boolean end) {
        int i = skipWs(s, 0);
        if (s.startsWith("<|python_tag|>", i)) i = skipWs(s, i + "<|python_tag|>".length());
        else if (!end && "<|python_tag|>".startsWith(s.substring(i)) && i < s.length()) return new Parse("", List.of());
        if (i >= s.length()) return new Parse(end ? s : "", List.of());
        if (s.charAt(i) != '{') return new Parse(s, List.of());
        List<Call> calls = new ArrayList<>();
        while (i < s.length() && s.charAt(i) == '{') {
            ObjectScan o = scan(s, i, end);
            Call c = o.call(s, end);
            if (c.name() == null && (end || o.end >= 0)) {
                // JSON that is not a call: the answer is text after all (nothing of it was released)
                return calls.isEmpty() ? new Parse(end ? s : "", List.of()) : new Parse("", calls);
            }
            calls.add(c);
            if (o.end < 0) break;
            i = skipWs(s, o.end);
            if (i < s.length() && s.charAt(i) == ';') i = skipWs(s, i + 1);
        }
        return new Parse("", calls);
    }

    /** Calls in a JSON array starting at {@code i} ({@code [}). */
    private static void array(String s, int i, boolean end, List<Call> calls) {
        i = skipWs(s, i + 1);
        while (i < s.length() && s.charAt(i) == '{') {
            ObjectScan o = scan(s, i, end);
            calls.add(o.call(s, end));
            if (o.end < 0) return;
            i = skipWs(s, o.end);
            if (i < s.length() && s.charAt(i) == ',') i = skipWs(s, i + 1);
        }
    }

    /** How many characters at the end of {@code s} (from {@code from}) could begin {@code marker}. */
    private static int heldBack(String s, int from, String marker) {
        for (int k = Math.min(marker.length() - 1, s.length() - from); k > 0; k--)
            if (s.endsWith(marker.substring(0, k))) return k;
        return 0;
    }

    private static int skipWs(String s, int i) {
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        return i;
    }

    /** The end (exclusive) of the JSON value at {@code i}, or -1 when the text ends inside it. */
    static int skipValue(String s, int i) {
        char c = s.charAt(i);
        if (c == '"') return skipString(s, i);
        if (c == '{' || c == '[') {
            int depth = 0;
            for (int j = i; j < s.length(); j++) {
                char x = s.charAt(j);
                if (x == '"') {
                    j = skipString(s, j);
                    if (j < 0) return -1;
                    j--;
                } else if (x == '{' || x == '[') depth++;
                else if (x == '}' || x == ']') {
                    if (--depth == 0) return j + 1;
                }
            }
            return -1;
        }
        for (int j = i; j < s.length(); j++) if (",}] \n\r\t".indexOf(s.charAt(j)) >= 0) return j;
        return -1;
    }

    private static int skipString(String s, int i) {
        for (int j = i + 1; j < s.length(); j++) {
            char x = s.charAt(j);
            if (x == '\\') j++;
            else if (x == '"') return j + 1;
        }
        return -1;
    }

    /** An object's top-level members: each value's span (end -1 while the text ends inside it). */
    private record ObjectScan(Map<String, int[]> members, int end) {
        Call call(String s, boolean textEnded) {
            String name = null;
            int[] n = members.get("name");
            if (n != null && n[1] > 0 && s.charAt(n[0]) == '"') name = decodeString(s.substring(n[0], n[1]));
            int[] a = members.containsKey("arguments") ? members.get("arguments") : members.get("parameters");
            String args = null;
            if (a != null && a[0] < s.length()) {
                if (s.charAt(a[0]) == '"') // arguments as a JSON string: released whole, decoded
                args = a[1] > 0 ? decodeString(s.substring(a[0], a[1])) : null;
                else args = a[1] > 0 ? s.substring(a[0], a[1]) : s.substring(a[0]);
            }
            boolean complete = end >= 0 || (textEnded && a != null);
            return new Call(name, args, complete, null);
        }
    }

    private static String decodeString(String quoted) {
        try {
            JsonNode n = JSON.readTree(quoted);
            return n.isString() ? n.asString() : null;
        } catch (JacksonException e) {
            return null;
        }
    }

    /** Scans the object at {@code i} ({@code {}) as far as the text goes. */
    private static ObjectScan scan(String s, int i, boolean end) {
        Map<String, int[]> members = new HashMap<>();
        int j = skipWs(s, i + 1);
        while (j < s.length()) {
            char c = s.charAt(j);
            if (c == '}') return new ObjectScan(members, j + 1);
            if (c == ',') {
                j = skipWs(s, j + 1);
                continue;
            }
            if (c != '"') return new ObjectScan(members, -1);
            int keyEnd = skipString(s, j);
            if (keyEnd < 0) break;
            String key = decodeString(s.substring(j, keyEnd));
            j = skipWs(s, keyEnd);
            if (j >= s.length() || s.charAt(j) != ':') break;
            j = skipWs(s, j + 1);
            if (j >= s.length()) {
                members.put(key, new int[] {j, -1});
                break;
            }
            int stop = skipValue(s, j);
            if (stop < 0 && end && s.charAt(j) != '"' && s.charAt(j) != '{' && s.charAt(j) != '[')
                stop = s.length(); // a number or literal at the very end
            members.put(key, new int[] {j, stop});
            if (stop < 0) break;
            j = skipWs(s, stop);
        }
        return new ObjectScan(members, -1);
    }
}
