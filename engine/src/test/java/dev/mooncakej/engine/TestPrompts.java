package dev.mooncakej.engine;

import java.util.List;

/** Twenty prompts covering words the generated vocabulary knows and does not, digits, punctuation,
 *  whitespace runs, code, accents, CJK, Cyrillic and emoji. */
public final class TestPrompts {
    public static final List<String> TWENTY = List.of(
            "The quick brown fox",
            "Once upon a time there was a little cache",
            "What is the capital of France?",
            "Numbers: 1, 2, 3, 42 and 2025-02-25 at 10:30.",
            "def generate(prompt, max_tokens=32):\n    return prompt",
            "She said, \"Hello there!\" and he answered: 'It's fine.'",
            "   leading spaces and  double  spaces   ",
            "Les modèles de langue apprennent vite.",
            "日本語の文章も少しあります。",
            "Это тоже текст, и он длинный.",
            "emoji 🙂 and symbols ∑ ≤ ≥ → ok",
            "if (x > 0) { return x * 2; } else { return -x; }",
            "The scheduler picks the prefill instance with the shortest predicted time to first token.",
            "tabs\tand\nnew\nlines\r\nmixed",
            "zzzz qqqq xxxx unseen wordforms appear",
            "Under overload it is better to reject a request early than to waste a prefill.",
            "3.14159 2.71828 1.41421",
            "UPPER CASE TEXT AND lower case text",
            "a",
            "Mooncake separates the prefill stage from the decode stage, and reuses the cache of shared prefixes.");

    private TestPrompts() {}
}
