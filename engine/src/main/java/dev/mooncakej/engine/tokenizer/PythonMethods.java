package dev.mooncakej.engine.tokenizer;

import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * What Hugging Face chat templates take from Python that Jinjava lacks, so real templates (Qwen3's,
 * for one) render as they do in transformers:
 *
 * <ul>
 *   <li>Python's string methods ({@code content.startswith('<tool_response>')},
 *       {@code content.split('</think>')[-1].lstrip('\n')}, ...), answered by an EL resolver placed
 *       before Jinjava's own when a method is called on a string;</li>
 *   <li>{@code seq[::-1]} (Jinjava's parser has no slice step), rewritten to {@code (seq|reverse)};</li>
 *   <li>keyword arguments whose value has a filter or an operator
 *       ({@code namespace(last=messages|length - 1)}: Jinjava binds {@code last=messages|length} first),
 *       rewritten with the value in parentheses.</li>
 * </ul>
 * Written here because no library adds Python's string methods to Jinjava.
 */
final class PythonMethods {
    static final Set<String> METHODS = Set.of(
            "startswith",
            "endswith",
            "split",
            "rsplit",
            "strip",
            "lstrip",
            "rstrip",
            "lower",
            "upper",
            "title",
            "capitalize",
            "replace",
            "find",
            "count",
            "join",
            "isdigit",
            "isspace");

    private static final Pattern REVERSED =
            Pattern.compile("([A-Za-z_][\\w.]*(?:\\[[^\\[\\]]*\\])*)\\[\\s*::\\s*-1\\s*\\]");

    private PythonMethods() {}

    /** Jinjava's default resolvers with the string methods in front. */
    static ELResolver resolver() {
        CompositeELResolver r = new CompositeELResolver();
        r.add(new StringMethods());
        r.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        return r;
    }

    /** The template with slice steps and keyword-argument values rewritten inside its tags. */
    static String rewrite(String template) {
        StringBuilder out = new StringBuilder(template.length() + 64);
        int i = 0;
        while (i < template.length()) {
            int open = nextTag(template, i);
            if (open < 0) {
                out.append(template, i, template.length());
                break;
            }
            String close = template.charAt(open + 1) == '{' ? "}}" : "%}";
            int end = closing(template, open + 2, close);
            if (end < 0) {
                out.append(template, i, template.length());
                break;
            }
            out.append(template, i, open + 2);
            out.append(rewriteExpression(template.substring(open + 2, end)));
            out.append(close);
            i = end + 2;
        }
        return out.toString();
    }

    private static int nextTag(String s, int from) {
        int a = s.indexOf("{{", from), b = s.indexOf("{%", from);
        if (a < 0) return b;
        if (b < 0) return a;
        return Math.min(a, b);
    }

    /** Where {@code close} ends the tag, skipping quoted strings. */
    private static int closing(String s, int from, String close) {
        char quote = 0;
        for (int i = from; i < s.length() - 1; i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                if (c == '\\') i++;
                else if (c == quote) quote = 0;
            } else if (c == '\'' || c == '"') quote = c;
            else if (s.startsWith(close, i)) return i;
        }
        return -1;
    }

    static String rewriteExpression(String e) {
        String s = REVERSED.matcher(e).replaceAll("($1|reverse)");
        return parenthesizeKeywordValues(s);
    }

    /** {@code f(a=x|g - 1, b=2)} to {@code f(a=(x|g - 1), b=(2))}: keyword values inside calls, outside strings. */
    static String parenthesizeKeywordValues(String s) {
        StringBuilder out = new StringBuilder(s.length() + 16);
        List<Integer> depthOpen = new ArrayList<>(); // per open paren: 1 while inside a wrapped keyword value
        int depth = 0;
        int wrapDepth = -1; // the paren depth whose keyword value is open, or -1
        char quote = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote != 0) {
                out.append(c);
                if (c == '\\' && i + 1 < s.length()) out.append(s.charAt(++i));
                else if (c == quote) quote = 0;
                continue;
            }
            switch (c) {
                case '\'', '"' -> {
                    quote = c;
                    out.append(c);
                }
                case '(', '[', '{' -> {
                    depth++;
                    depthOpen.add(c == '(' ? 1 : 0);
                    out.append(c);
                    int kw = keywordAt(s, i + 1);
                    if (c == '(' && kw > 0 && wrapDepth < 0) {
                        out.append(s, i + 1, kw + 1).append('(');
                        i = kw;
                        wrapDepth = depth;
                    }
                }
                case ')', ']', '}' -> {
                    if (wrapDepth == depth && c == ')') {
                        out.append(')');
                        wrapDepth = -1;
                    }
                    depth = Math.max(0, depth - 1);
                    if (!depthOpen.isEmpty()) depthOpen.remove(depthOpen.size() - 1);
                    out.append(c);
                }
                case ',' -> {
                    if (wrapDepth == depth) {
                        out.append(')');
                        wrapDepth = -1;
                    }
                    out.append(c);
                    int kw = keywordAt(s, i + 1);
                    if (kw > 0 && depth > 0 && depthOpen.get(depthOpen.size() - 1) == 1 && wrapDepth < 0) {
                        out.append(s, i + 1, kw + 1).append('(');
                        i = kw;
                        wrapDepth = depth;
                    }
                }
                default -> out.append(c);
            }
        }
        return out.toString();
    }

    /** If {@code s} at {@code from} is {@code [spaces]name[spaces]=} (not {@code ==}), the index of the {@code =}. */
    private static int keywordAt(String s, int from) {
        int i = from;
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        int start = i;
        while (i < s.length() && (Character.isLetterOrDigit(s.charAt(i)) || s.charAt(i) == '_')) i++;
        if (i == start || Character.isDigit(s.charAt(start))) return -1;
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
        if (i < s.length() && s.charAt(i) == '=' && (i + 1 == s.length() || s.charAt(i + 1) != '=')) return i;
        return -1;
    }

    /** Python's str methods on Java strings; every other call goes on to Jinjava's resolvers. */
    static final class StringMethods extends ELResolver {
        @Override
        public Object invoke(ELContext context, Object base, Object method, Class<?>[] types, Object[] params) {
            if (!(base instanceof String s) || method == null || !METHODS.contains(method.toString())) return null;
            Object[] p = params == null ? new Object[0] : params;
            Object result = call(s, method.toString(), p);
            context.setPropertyResolved(true);
            return result;
        }

        static Object call(String s, String m, Object[] p) {
            return switch (m) {
                case "startswith" -> anyMatch(p[0], x -> s.startsWith(x));
                case "endswith" -> anyMatch(p[0], x -> s.endsWith(x));
                case "split" -> split(s, p.length > 0 ? p[0] : null, p.length > 1 ? toInt(p[1]) : -1);
                case "rsplit" -> rsplit(s, p.length > 0 ? p[0] : null, p.length > 1 ? toInt(p[1]) : -1);
                case "strip" -> rstrip(lstrip(s, chars(p)), chars(p));
                case "lstrip" -> lstrip(s, chars(p));
                case "rstrip" -> rstrip(s, chars(p));
                case "lower" -> s.toLowerCase(Locale.ROOT);
                case "upper" -> s.toUpperCase(Locale.ROOT);
                case "capitalize" ->
                    s.isEmpty()
                            ? s
                            : s.substring(0, 1).toUpperCase(Locale.ROOT)
                                    + s.substring(1).toLowerCase(Locale.ROOT);
                case "title" -> title(s);
                case "replace" ->
                    replace(s, String.valueOf(p[0]), String.valueOf(p[1]), p.length > 2 ? toInt(p[2]) : -1);
                case "find" -> (long) s.indexOf(String.valueOf(p[0]));
                case "count" -> count(s, String.valueOf(p[0]));
                case "join" -> join(s, p[0]);
                case "isdigit" -> !s.isEmpty() && s.chars().allMatch(Character::isDigit);
                case "isspace" -> !s.isEmpty() && s.chars().allMatch(Character::isWhitespace);
                default -> throw new IllegalStateException("unreachable: " + m);
            };
        }

        private static boolean anyMatch(Object arg, Predicate<String> test) {
            if (arg instanceof Collection<?> c) return c.stream().anyMatch(x -> test.test(String.valueOf(x)));
            return test.test(String.valueOf(arg));
        }

        private static String chars(Object[] p) {
            return p.length == 0 || p[0] == null ? null : String.valueOf(p[0]);
        }

        private static boolean strippable(char c, String chars) {
            return chars == null ? Character.isWhitespace(c) : chars.indexOf(c) >= 0;
        }

        static String lstrip(String s, String chars) {
            int i = 0;
            while (i < s.length() && strippable(s.charAt(i), chars)) i++;
            return s.substring(i);
        }

        static String rstrip(String s, String chars) {
            int i = s.length();
            while (i > 0 && strippable(s.charAt(i - 1), chars)) i--;
            return s.substring(0, i);
        }

        static List<String> split(String s, Object sep, int max) {
            List<String> out = new ArrayList<>();
            if (sep == null) { // runs of whitespace, no empty parts
                int i = 0, n = 0;
                while (true) {
                    while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++;
                    if (i == s.length()) break;
                    if (max >= 0 && n == max) {
                        out.add(s.substring(i));
                        break;
                    }
                    int j = i;
                    while (j < s.length() && !Character.isWhitespace(s.charAt(j))) j++;
                    out.add(s.substring(i, j));
                    n++;
                    i = j;
                }
                return out;
            }
            String d = String.valueOf(sep);
            if (d.isEmpty()) throw new IllegalArgumentException("split: empty separator");
            int from = 0;
            while (max < 0 || out.size() < max) {
                int at = s.indexOf(d, from);
                if (at < 0) break;
                out.add(s.substring(from, at));
                from = at + d.length();
            }
            out.add(s.substring(from));
            return out;
        }

        static List<String> rsplit(String s, Object sep, int max) {
            if (sep == null || max < 0) return split(s, sep, max);
            String d = String.valueOf(sep);
            List<String> out = new ArrayList<>();
            int end = s.length();
            while (out.size() < max) {
                int at = s.lastIndexOf(d, end - d.length());
                if (at < 0) break;
                out.add(0, s.substring(at + d.length(), end));
                end = at;
            }
            out.add(0, s.substring(0, end));
            return out;
        }

        private static String title(String s) {
            StringBuilder b = new StringBuilder(s.length());
            boolean prevLetter = false;
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                b.append(prevLetter ? Character.toLowerCase(c) : Character.toUpperCase(c));
                prevLetter = Character.isLetter(c);
            }
            return b.toString();
        }

        private static String replace(String s, String a, String b, int count) {
            if (count < 0) return s.replace(a, b);
            StringBuilder out = new StringBuilder();
            int from = 0, n = 0;
            while (n < count) {
                int at = s.indexOf(a, from);
                if (at < 0 || a.isEmpty()) break;
                out.append(s, from, at).append(b);
                from = at + a.length();
                n++;
            }
            return out.append(s.substring(from)).toString();
        }

        private static long count(String s, String sub) {
            if (sub.isEmpty()) return s.length() + 1L;
            long n = 0;
            for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) n++;
            return n;
        }

        private static String join(String sep, Object items) {
            List<String> parts = new ArrayList<>();
            if (items instanceof Iterable<?> it) for (Object o : it) parts.add(String.valueOf(o));
            else parts.add(String.valueOf(items));
            return String.join(sep, parts);
        }

        private static int toInt(Object o) {
            return o instanceof Number n ? n.intValue() : Integer.parseInt(String.valueOf(o));
        }

        @Override
        public Class<?> getCommonPropertyType(ELContext context, Object base) {
            return null;
        }

        @Override
        public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
            return null;
        }

        @Override
        public Class<?> getType(ELContext context, Object base, Object property) {
            return null;
        }

        @Override
        public Object getValue(ELContext context, Object base, Object property) {
            return null;
        }

        @Override
        public boolean isReadOnly(ELContext context, Object base, Object property) {
            return true;
        }

        @Override
        public void setValue(ELContext context, Object base, Object property, Object value) {}
    }
}
