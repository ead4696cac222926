package dev.mooncakej.engine.constrain;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import tools.jackson.databind.json.JsonMapper;

/**
 * Which bytes may come next in JSON text that must satisfy a {@link SchemaNode}: a pushdown automaton
 * over UTF-8 bytes (tokens are bytes, and a token may end inside a character), run as a set of
 * configurations so that {@code anyOf}, enums with common prefixes and numbers that may or may not go
 * on need no look-ahead. A configuration is an immutable stack of frames; feeding a byte replaces each
 * configuration by its successors, and the text so far is a valid prefix while one is left.
 *
 * <p>Bounded so that generation always has a way to finish: at most {@link #MAX_WHITESPACE} whitespace
 * bytes in a row and {@link #MAX_DIGITS} digits in a number part; JSON text ends with its value (no
 * trailing whitespace).
 */
public final class JsonMatcher {
    static final int MAX_WHITESPACE = 12;
    static final int MAX_DIGITS = 16;
    static final int MAX_PROPERTIES = 64;
    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** An immutable stack of frames; {@link #EMPTY} when the value is complete. */
    record Stack(Frame top, Stack below) {
        static final Stack EMPTY = new Stack(null, null);

        Stack push(Frame f) {
            return new Stack(f, this);
        }
    }

    /** One level of the automaton. */
    interface Frame {
        /** Adds to {@code out} the stacks after consuming {@code b}, {@code below} being what is under this frame. */
        void step(int b, Stack below, Set<Stack> out);

        /** True when this frame may end before {@code b} without consuming it (a number's last digit). */
        default boolean canEnd() {
            return false;
        }
    }

    private Set<Stack> configs;

    private JsonMatcher(Set<Stack> configs) {
        this.configs = configs;
    }

    public static JsonMatcher of(SchemaNode root) {
        Set<Stack> s = new LinkedHashSet<>();
        s.add(Stack.EMPTY.push(new Value(root, 0)));
        return new JsonMatcher(s);
    }

    public JsonMatcher copy() {
        return new JsonMatcher(configs);
    }

    /** Feeds {@code bytes}; false (and nothing changed) when they cannot continue valid text. */
    public boolean accept(byte[] bytes) {
        return accept(bytes, 0, bytes.length);
    }

    public boolean accept(byte[] bytes, int from, int to) {
        Set<Stack> cur = configs;
        for (int i = from; i < to && !cur.isEmpty(); i++) cur = advance(cur, bytes[i] & 0xFF);
        if (cur.isEmpty()) return false;
        configs = cur;
        return true;
    }

    /** Feeds one byte; false (and nothing changed) when it cannot continue valid text. */
    public boolean accept(int b) {
        Set<Stack> next = advance(configs, b);
        if (next.isEmpty()) return false;
        configs = next;
        return true;
    }

    /** True when the text so far is a whole valid value (the end of generation may come now). */
    public boolean isComplete() {
        for (Stack s : configs) if (completes(s)) return true;
        return false;
    }

    /** True when more bytes can follow (some configuration is not complete). */
    public boolean canContinue() {
        for (Stack s : configs) if (s != Stack.EMPTY) return true;
        return false;
    }

    Set<Stack> configs() {
        return configs;
    }

    /**
     * The shortest bytes that make the text so far a complete value (empty when it is one): each frame
     * of a configuration finished the shortest way (required properties with their shortest values,
     * strings at their minimum length, numbers as {@code 0}), the shortest over the configurations.
     * What steering towards a closed value under a token budget follows.
     */
    public byte[] shortestCompletion() {
        byte[] best = null;
        for (Stack s : configs) {
            if (completes(s)) return new byte[0];
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            for (Stack f = s; f != Stack.EMPTY; f = f.below()) finish(f.top(), out);
            if (best == null || out.size() < best.length) best = out.toByteArray();
        }
        return best == null ? new byte[0] : best;
    }

    /** Appends the shortest bytes that end frame {@code f} (given its state). */
    private static void finish(Frame f, ByteArrayOutputStream out) {
        switch (f) {
            case Value v -> minText(v.node(), out);
            case Lit l -> {
                byte[] t = shortest(l.texts());
                out.write(t, l.pos(), t.length - l.pos());
            }
            case Str st -> {
                int len = st.len();
                if (st.cont() > 0) {
                    out.write(st.lo());
                    for (int i = 1; i < st.cont(); i++) out.write(0x80);
                } else if (st.esc() == 1) out.write('n');
                else for (int i = 1; i < st.esc(); i++) out.write('0');
                for (; len < st.node().minLength(); len++) out.write('a');
                out.write('"');
            }
            case Num n -> {
                if (!n.canEnd()) out.write('0');
            }
            case Obj o -> finishObject(o, out);
            case Key k -> {
                // the key that closes the object soonest: its rest, ':', its value, what the object still needs
                byte[] best = null;
                for (int i = 0; i < k.keys().size(); i++) {
                    ByteArrayOutputStream alt = new ByteArrayOutputStream();
                    byte[] key = k.keys().get(i);
                    alt.write(key, k.pos(), key.length - k.pos());
                    int ix = k.index().get(i);
                    alt.write(':');
                    minText(k.object().node().values().get(ix), alt);
                    Obj o = k.object();
                    finishObject(new Obj(o.node(), o.seen() | (1L << ix), Obj.AFTER_VALUE, 0, -1), alt);
                    if (best == null || alt.size() < best.length) best = alt.toByteArray();
                }
                out.writeBytes(best);
            }
            case Arr a -> {
                int count = a.count();
                if (a.phase() == Arr.AFTER_COMMA) {
                    minText(a.node().items(), out);
                    count++;
                } else if (a.phase() == Arr.OPEN && a.node().min() > 0) {
                    minText(a.node().items(), out);
                    count++;
                }
                for (; count < a.node().min(); count++) {
                    out.write(',');
                    minText(a.node().items(), out);
                }
                out.write(']');
            }
            default -> throw new IllegalStateException("frame " + f);
        }
    }

    private static void finishObject(Obj o, ByteArrayOutputStream out) {
        SchemaNode.Obj node = o.node();
        switch (o.phase()) {
            case Obj.AFTER_KEY -> {
                out.write(':');
                minText(o.pending() >= 0 ? node.values().get(o.pending()) : node.additional(), out);
                long seen = o.pending() >= 0 ? o.seen() | (1L << o.pending()) : o.seen();
                finishObject(new Obj(node, seen, Obj.AFTER_VALUE, 0, -1), out);
            }
            case Obj.OPEN, Obj.AFTER_VALUE -> {
                boolean first = o.phase() == Obj.OPEN;
                for (int i = 0; i < node.names().size(); i++) {
                    if ((o.seen() & (1L << i)) != 0
                            || !node.required().contains(node.names().get(i))) continue;
                    if (!first) out.write(',');
                    first = false;
                    property(node, i, out);
                }
                out.write('}');
            }
            case Obj.AFTER_COMMA -> {
                // a property must come: the first required one missing, else the cheapest allowed one
                int pick = -1;
                for (int i = 0; i < node.names().size() && pick < 0; i++)
                    if ((o.seen() & (1L << i)) == 0
                            && node.required().contains(node.names().get(i))) pick = i;
                if (pick < 0) {
                    int bestLen = Integer.MAX_VALUE;
                    for (int i = 0; i < node.names().size(); i++) {
                        if ((o.seen() & (1L << i)) != 0) continue;
                        ByteArrayOutputStream alt = new ByteArrayOutputStream();
                        property(node, i, alt);
                        if (alt.size() < bestLen) {
                            bestLen = alt.size();
                            pick = i;
                        }
                    }
                }
                if (pick >= 0) {
                    property(node, pick, out);
                    finishObject(new Obj(node, o.seen() | (1L << pick), Obj.AFTER_VALUE, 0, -1), out);
                } else { // only an additional property can come
                    out.writeBytes(bytes("\"\":"));
                    minText(node.additional(), out);
                    finishObject(new Obj(node, o.seen(), Obj.AFTER_VALUE, 0, -1), out);
                }
            }
            default -> throw new IllegalStateException("object phase " + o.phase());
        }
    }

    private static void property(SchemaNode.Obj node, int i, ByteArrayOutputStream out) {
        out.write('"');
        out.writeBytes(keyText(node.names().get(i)));
        out.write(':');
        minText(node.values().get(i), out);
    }

    /** The shortest JSON text of a value of {@code node}. */
    static void minText(SchemaNode node, ByteArrayOutputStream out) {
        switch (node) {
            case SchemaNode.Any a -> out.write('0');
            case SchemaNode.Num n -> out.write('0');
            case SchemaNode.Bool b -> out.writeBytes(bytes("true"));
            case SchemaNode.Null n -> out.writeBytes(bytes("null"));
            case SchemaNode.Literal l -> out.writeBytes(shortest(l.texts()));
            case SchemaNode.Str st -> {
                out.write('"');
                for (int i = 0; i < st.minLength(); i++) out.write('a');
                out.write('"');
            }
            case SchemaNode.Arr a -> {
                out.write('[');
                for (int i = 0; i < a.min(); i++) {
                    if (i > 0) out.write(',');
                    minText(a.items(), out);
                }
                out.write(']');
            }
            case SchemaNode.Obj o -> {
                out.write('{');
                finishObject(new Obj(o, 0, Obj.OPEN, 0, -1), out);
            }
            case SchemaNode.Union u -> {
                byte[] best = null;
                for (SchemaNode alt : u.alternatives()) {
                    ByteArrayOutputStream b = new ByteArrayOutputStream();
                    minText(alt, b);
                    if (best == null || b.size() < best.length) best = b.toByteArray();
                }
                out.writeBytes(best);
            }
        }
    }

    private static byte[] shortest(List<byte[]> texts) {
        byte[] best = texts.get(0);
        for (byte[] t : texts) if (t.length < best.length) best = t;
        return best;
    }

    private static boolean completes(Stack s) {
        while (s != Stack.EMPTY) {
            if (!s.top().canEnd()) return false;
            s = s.below();
        }
        return true;
    }

    static Set<Stack> advance(Set<Stack> from, int b) {
        Set<Stack> out = new LinkedHashSet<>();
        for (Stack s : from) feed(s, b, out);
        return out;
    }

    private static void feed(Stack s, int b, Set<Stack> out) {
        while (s != Stack.EMPTY) {
            s.top().step(b, s.below(), out);
            if (!s.top().canEnd()) return;
            s = s.below(); // the frame ends here; b goes to the frame under it
        }
    }

    private static boolean whitespace(int b) {
        return b == ' ' || b == '\n' || b == '\t' || b == '\r';
    }

    /** Expecting a value of {@code node}, after {@code ws} whitespace bytes. */
    record Value(SchemaNode node, int ws) implements Frame {
        @Override
        public void step(int b, Stack below, Set<Stack> out) {
            if (whitespace(b)) {
                if (ws < MAX_WHITESPACE) out.add(below.push(new Value(node, ws + 1)));
                return;
            }
            start(node, b, below, out);
        }
    }

    /** The first byte {@code b} of a value of {@code node}, over {@code below}. */
    static void start(SchemaNode node, int b, Stack below, Set<Stack> out) {
        switch (node) {
            case SchemaNode.Any a -> {
                switch (b) {
                    case '{' -> out.add(below.push(new Obj(ANY_OBJECT, 0, Obj.OPEN, 0, -1)));
                    case '[' -> out.add(below.push(new Arr(ANY_ARRAY, 0, Arr.OPEN, 0)));
                    case '"' -> out.add(below.push(new Str(ANY_STRING, 0, 0, 0, 0x80, 0xBF)));
                    default -> {
                        start(NUMBER, b, below, out);
                        start(BOOL, b, below, out);
                        start(NULL, b, below, out);
                    }
                }
            }
            case SchemaNode.Obj o -> {
                if (b == '{') out.add(below.push(new Obj(o, 0, Obj.OPEN, 0, -1)));
            }
            case SchemaNode.Arr a -> {
                if (b == '[') out.add(below.push(new Arr(a, 0, Arr.OPEN, 0)));
            }
            case SchemaNode.Str s -> {
                if (b == '"') out.add(below.push(new Str(s, 0, 0, 0, 0x80, 0xBF)));
            }
            case SchemaNode.Num n -> {
                if (b == '-') out.add(below.push(new Num(n.integer(), Num.MINUS, 0)));
                else if (b == '0') out.add(below.push(new Num(n.integer(), Num.ZERO, 1)));
                else if (b >= '1' && b <= '9') out.add(below.push(new Num(n.integer(), Num.INT, 1)));
            }
            case SchemaNode.Bool x -> new Lit(BOOL_TEXTS, 0).step(b, below, out);
            case SchemaNode.Null x -> new Lit(NULL_TEXTS, 0).step(b, below, out);
            case SchemaNode.Literal l -> new Lit(l.texts(), 0).step(b, below, out);
            case SchemaNode.Union u -> {
                for (SchemaNode alt : u.alternatives()) start(alt, b, below, out);
            }
        }
    }

    static final SchemaNode.Obj ANY_OBJECT = new SchemaNode.Obj(List.of(), List.of(), Set.of(), new SchemaNode.Any());
    static final SchemaNode.Arr ANY_ARRAY = new SchemaNode.Arr(new SchemaNode.Any(), 0, Integer.MAX_VALUE);
    static final SchemaNode.Str ANY_STRING = new SchemaNode.Str(0, Integer.MAX_VALUE);
    static final SchemaNode.Num NUMBER = new SchemaNode.Num(false);
    static final SchemaNode.Bool BOOL = new SchemaNode.Bool();
    static final SchemaNode.Null NULL = new SchemaNode.Null();
    static final List<byte[]> BOOL_TEXTS = List.of(bytes("true"), bytes("false"));
    static final List<byte[]> NULL_TEXTS = List.of(bytes("null"));

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** One of {@code texts}, of which {@code pos} bytes have been read (all texts agree on them). */
    record Lit(List<byte[]> texts, int pos) implements Frame {
        @Override
        public void step(int b, Stack below, Set<Stack> out) {
            List<byte[]> longer = new ArrayList<>();
            boolean ends = false;
            for (byte[] t : texts) {
                if (t.length > pos && (t[pos] & 0xFF) == b) {
                    if (t.length == pos + 1) ends = true;
                    else longer.add(t);
                }
            }
            if (ends) out.add(below);
            if (!longer.isEmpty()) out.add(below.push(new Lit(List.copyOf(longer), pos + 1)));
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Lit l && l.pos == pos && l.texts.size() == texts.size() && sameTexts(l.texts, texts);
        }

        @Override
        public int hashCode() {
            int h = pos;
            for (byte[] t : texts) h = 31 * h + Arrays.hashCode(t);
            return h;
        }

        private static boolean sameTexts(List<byte[]> a, List<byte[]> b) {
            for (int i = 0; i < a.size(); i++) if (!Arrays.equals(a.get(i), b.get(i))) return false;
            return true;
        }
    }

    /**
     * Inside a string: {@code len} characters so far; {@code esc} 0 normal, 1 after a backslash, 2..5
     * hex digits of a {@code \\u} escape still to come; {@code cont} UTF-8 continuation bytes still to
     * come, the next in {@code lo..hi}.
     */
    record Str(SchemaNode.Str node, int len, int esc, int cont, int lo, int hi) implements Frame {
        Str {
            // past minLength an unbounded string's length no longer matters: one state, so masks cache
            if (node.maxLength() == Integer.MAX_VALUE) len = Math.min(len, node.minLength());
        }

        @Override
        public void step(int b, Stack below, Set<Stack> out) {
            if (cont > 0) {
                if (b >= lo && b <= hi) out.add(below.push(new Str(node, len, 0, cont - 1, 0x80, 0xBF)));
                return;
            }
            if (esc == 1) {
                if ("\"\\/bfnrt".indexOf(b) >= 0) out.add(below.push(new Str(node, len, 0, 0, 0x80, 0xBF)));
                else if (b == 'u') out.add(below.push(new Str(node, len, 5, 0, 0x80, 0xBF)));
                return;
            }
            if (esc >= 2) {
                boolean hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
                if (hex) out.add(below.push(new Str(node, len, esc == 2 ? 0 : esc - 1, 0, 0x80, 0xBF)));
                return;
            }
            if (b == '"') {
                if (len >= node.minLength()) out.add(below);
                return;
            }
            if (len >= node.maxLength() || b < 0x20) return; // control characters must be escaped
            if (b == '\\') out.add(below.push(new Str(node, len + 1, 1, 0, 0x80, 0xBF)));
            else if (b < 0x80) out.add(below.push(new Str(node, len + 1, 0, 0, 0x80, 0xBF)));
            else if (b >= 0xC2 && b <= 0xDF) out.add(below.push(new Str(node, len + 1, 0, 1, 0x80, 0xBF)));
            else if (b == 0xE0) out.add(below.push(new Str(node, len + 1, 0, 2, 0xA0, 0xBF)));
            else if (b == 0xED) out.add(below.push(new Str(node, len + 1, 0, 2, 0x80, 0x9F)));
            else if (b >= 0xE1 && b <= 0xEF) out.add(below.push(new Str(node, len + 1, 0, 2, 0x80, 0xBF)));
            else if (b == 0xF0) out.add(below.push(new Str(node, len + 1, 0, 3, 0x90, 0xBF)));
            else if (b >= 0xF1 && b <= 0xF3) out.add(below.push(new Str(node, len + 1, 0, 3, 0x80, 0xBF)));
            else if (b == 0xF4) out.add(below.push(new Str(node, len + 1, 0, 3, 0x80, 0x8F)));
        }
    }

    /** A number: {@code phase} as named below, {@code digits} in the current run of digits. */
    record Num(boolean integer, int phase, int digits) implements Frame {
        static final int MINUS = 0, ZERO = 1, INT = 2, DOT = 3, FRAC = 4, EXP = 5, EXP_SIGN = 6, EXP_DIGITS = 7;

        @Override
        public void step(int b, Stack below, Set<Stack> out) {
            boolean digit = b >= '0' && b <= '9';
            switch (phase) {
                case MINUS -> {
                    if (b == '0') out.add(below.push(new Num(integer, ZERO, 1)));
                    else if (digit) out.add(below.push(new Num(integer, INT, 1)));
                }
                case ZERO, INT -> {
                    if (phase == INT && digit && digits < MAX_DIGITS)
                        out.add(below.push(new Num(integer, INT, digits + 1)));
                    else if (!integer && b == '.') out.add(below.push(new Num(integer, DOT, 0)));
                    else if (!integer && (b == 'e' || b == 'E')) out.add(below.push(new Num(integer, EXP, 0)));
                }
                case DOT -> {
                    if (digit) out.add(below.push(new Num(integer, FRAC, 1)));
                }
                case FRAC -> {
                    if (digit && digits < MAX_DIGITS) out.add(below.push(new Num(integer, FRAC, digits + 1)));
                    else if (b == 'e' || b == 'E') out.add(below.push(new Num(integer, EXP, 0)));
                }
                case EXP -> {
                    if (b == '+' || b == '-') out.add(below.push(new Num(integer, EXP_SIGN, 0)));
                    else if (digit) out.add(below.push(new Num(integer, EXP_DIGITS, 1)));
                }
                case EXP_SIGN -> {
                    if (digit) out.add(below.push(new Num(integer, EXP_DIGITS, 1)));
                }
                case EXP_DIGITS -> {
                    if (digit && digits < 3) out.add(below.push(new Num(integer, EXP_DIGITS, digits + 1)));
                }
                default -> throw new IllegalStateException("number phase " + phase);
            }
        }

        @Override
        public boolean canEnd() {
            return phase == ZERO || phase == INT || phase == FRAC || phase == EXP_DIGITS;
        }
    }

    /**
     * An object: {@code seen} declared properties (bit i for names[i]), {@code phase}, {@code ws}
     * whitespace bytes in a row, {@code pending} the property whose value comes next (-1: an additional
     * one).
     */
    record Obj(SchemaNode.Obj node, long seen, int phase, int ws, int pending) implements Frame {
        static final int OPEN = 0, AFTER_COMMA = 1, AFTER_KEY = 2, AFTER_VALUE = 3;

        @Override
        public void step(int b, Stack below, Set<Stack> out) {
            if (whitespace(b)) {
                if (ws < MAX_WHITESPACE) out.add(below.push(new Obj(node, seen, phase, ws + 1, pending)));
                return;
            }
            switch (phase) {
                case OPEN, AFTER_COMMA -> {
                    if (b == '}' && phase == OPEN && requiredSeen()) out.add(below);
                    if (b == '"') {
                        List<byte[]> keys = new ArrayList<>();
                        List<Integer> index = new ArrayList<>();
                        for (int i = 0; i < node.names().size(); i++) {
                            if ((seen & (1L << i)) == 0) {
                                keys.add(keyText(node.names().get(i)));
                                index.add(i);
                            }
                        }
                        if (!keys.isEmpty())
                            out.add(below.push(new Key(this, List.copyOf(keys), List.copyOf(index), 0)));
                        if (node.additional() != null) {
                            out.add(below.push(new Obj(node, seen, AFTER_KEY, 0, -1))
                                    .push(new Str(ANY_STRING, 0, 0, 0, 0x80, 0xBF)));
                        }
                    }
                }
                case AFTER_KEY -> {
                    if (b == ':') {
                        SchemaNode value = pending >= 0 ? node.values().get(pending) : node.additional();
                        long now = pending >= 0 ? seen | (1L << pending) : seen;
                        out.add(below.push(new Obj(node, now, AFTER_VALUE, 0, -1))
                                .push(new Value(value, 0)));
                    }
                }
                case AFTER_VALUE -> {
                    if (b == '}' && requiredSeen()) out.add(below);
                    if (b == ',' && morePossible()) out.add(below.push(new Obj(node, seen, AFTER_COMMA, 0, -1)));
                }
                default -> throw new IllegalStateException("object phase " + phase);
            }
        }

        boolean requiredSeen() {
            for (String r : node.required()) if ((seen & (1L << node.names().indexOf(r))) == 0) return false;
            return true;
        }

        boolean morePossible() {
            return node.additional() != null
                    || Long.bitCount(seen) < node.names().size();
        }
    }

    /** A property name's JSON text after its opening quote, closing quote included. */
    static byte[] keyText(String name) {
        byte[] quoted = JSON.writeValueAsBytes(name);
        return Arrays.copyOfRange(quoted, 1, quoted.length);
    }

    /** A declared property name being read: {@code keys} still possible (with their {@code index}). */
    record Key(Obj object, List<byte[]> keys, List<Integer> index, int pos) implements Frame {
        @Override
        public void step(int b, Stack below, Set<Stack> out) {
            List<byte[]> k = new ArrayList<>();
            List<Integer> ix = new ArrayList<>();
            for (int i = 0; i < keys.size(); i++) {
                byte[] t = keys.get(i);
                if ((t[pos] & 0xFF) != b) continue;
                if (t.length == pos + 1) {
                    Obj o = object;
                    out.add(below.push(new Obj(o.node(), o.seen(), Obj.AFTER_KEY, 0, index.get(i))));
                } else {
                    k.add(t);
                    ix.add(index.get(i));
                }
            }
            if (!k.isEmpty()) out.add(below.push(new Key(object, List.copyOf(k), List.copyOf(ix), pos + 1)));
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key other
                    && other.pos == pos
                    && other.object.equals(object)
                    && other.index.equals(index);
        }

        @Override
        public int hashCode() {
            return 31 * (31 * object.hashCode() + index.hashCode()) + pos;
        }
    }

    /** An array: {@code count} elements so far. */
    record Arr(SchemaNode.Arr node, int count, int phase, int ws) implements Frame {
        static final int OPEN = 0, AFTER_COMMA = 1, AFTER_VALUE = 2;

        Arr {
            if (node.max() == Integer.MAX_VALUE) count = Math.min(count, node.min()); // as Str's length
        }

        @Override
        public void step(int b, Stack below, Set<Stack> out) {
            if (whitespace(b)) {
                if (ws < MAX_WHITESPACE) out.add(below.push(new Arr(node, count, phase, ws + 1)));
                return;
            }
            if (phase == AFTER_VALUE) {
                if (b == ']' && count >= node.min()) out.add(below);
                if (b == ',' && count < node.max()) out.add(below.push(new Arr(node, count, AFTER_COMMA, 0)));
                return;
            }
            if (b == ']' && phase == OPEN && node.min() == 0) out.add(below);
            if (count < node.max()) start(node.items(), b, below.push(new Arr(node, count + 1, AFTER_VALUE, 0)), out);
        }
    }
}
