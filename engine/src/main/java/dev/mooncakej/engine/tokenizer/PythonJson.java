package dev.mooncakej.engine.tokenizer;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Jinja's {@code tojson} as Hugging Face's chat templates get it: Python's {@code json.dumps} with
 * {@code ensure_ascii=False} ({@code ", "} and {@code ": "} between items, {@code indent=N} on request),
 * where Jinjava's own writes compact JSON. Tool definitions and tool-call arguments reach the model
 * through it, so its bytes are the prompt's.
 */
final class PythonJson implements Filter {
    @Override
    public String getName() {
        return "tojson";
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
        return dumps(var, args.length > 0 ? Integer.parseInt(args[0].trim()) : -1);
    }

    @Override
    public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
        Object indent = kwargs.containsKey("indent") ? kwargs.get("indent") : args.length > 0 ? args[0] : null;
        return dumps(
                var,
                indent == null ? -1 : Integer.parseInt(String.valueOf(indent).trim()));
    }

    /** {@code value} as Python's json.dumps writes it; {@code indent} < 0: on one line. */
    static String dumps(Object value, int indent) {
        StringBuilder sb = new StringBuilder();
        write(value, indent, 0, sb);
        return sb.toString();
    }

    private static void write(Object v, int indent, int depth, StringBuilder sb) {
        switch (v) {
            case null -> sb.append("null");
            case Boolean b -> sb.append(b ? "true" : "false");
            case Double d -> sb.append(pyFloat(d));
            case Float f -> sb.append(pyFloat(f.doubleValue()));
            case Number n -> sb.append(n);
            case CharSequence s -> string(s.toString(), sb);
            case Map<?, ?> m -> {
                if (m.isEmpty()) {
                    sb.append("{}");
                    return;
                }
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) sb.append(indent >= 0 ? "," : ", ");
                    first = false;
                    newline(indent, depth + 1, sb);
                    string(String.valueOf(e.getKey()), sb);
                    sb.append(": ");
                    write(e.getValue(), indent, depth + 1, sb);
                }
                newline(indent, depth, sb);
                sb.append('}');
            }
            case Iterable<?> it -> {
                if (!it.iterator().hasNext()) {
                    sb.append("[]");
                    return;
                }
                sb.append('[');
                boolean first = true;
                for (Object x : it) {
                    if (!first) sb.append(indent >= 0 ? "," : ", ");
                    first = false;
                    newline(indent, depth + 1, sb);
                    write(x, indent, depth + 1, sb);
                }
                newline(indent, depth, sb);
                sb.append(']');
            }
            default -> {
                if (v.getClass().isArray()) {
                    List<Object> list = new ArrayList<>();
                    for (int i = 0; i < Array.getLength(v); i++) list.add(Array.get(v, i));
                    write(list, indent, depth, sb);
                } else string(v.toString(), sb);
            }
        }
    }

    private static void newline(int indent, int depth, StringBuilder sb) {
        if (indent < 0) return;
        sb.append('\n');
        sb.append(" ".repeat(indent * depth));
    }

    /** Python's repr of a float: {@code 3.0}, {@code 0.1}, {@code 1e+20}. */
    private static String pyFloat(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == Math.rint(d) && Math.abs(d) < 1e16) return String.valueOf((long) d) + ".0";
        return String.valueOf(d).replace("E", "e+").replace("e+-", "e-");
    }

    private static void string(String s, StringBuilder sb) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }
}
