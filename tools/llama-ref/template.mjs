// Chat-template rendering by @huggingface/jinja (the Jinja implementation of Hugging Face's
// transformers.js), as the reference the built-in engine's template rendering is checked against.
// Usage: node template.mjs < request.json > answer.json
// request: {"template": "...", "bos_token": "<s>", "eos_token": "</s>", "now": "2026-12-06T12:00:00Z",
//           "cases": [{"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true,
//                      "extra": {...more variables...}}]}
// answer:  {"results": [{"text": "..."} or {"error": "..."}]}
// raise_exception(message) and strftime_now(format) are @huggingface/jinja's built-ins; run with TZ=UTC.
import {Template} from "@huggingface/jinja";

const input = JSON.parse(await new Promise((resolve) => {
    let s = "";
    process.stdin.on("data", (d) => s += d);
    process.stdin.on("end", () => resolve(s));
}));

// strftime_now is @huggingface/jinja's own (local time, %Y %m %d %b %B %H %M); "now" pins the clock it reads
if (input.now) {
    const fixed = Date.parse(input.now);
    const RealDate = Date;
    globalThis.Date = class extends RealDate {
        constructor(...args) {
            super(...(args.length ? args : [fixed]));
        }

        static now() {
            return fixed;
        }
    };
}

const template = new Template(input.template);
const results = input.cases.map((c) => {
    try {
        const text = template.render({
            messages: c.messages,
            add_generation_prompt: c.add_generation_prompt ?? false,
            bos_token: input.bos_token ?? "",
            eos_token: input.eos_token ?? "",
            ...(c.extra ?? {}),
        });
        return {text};
    } catch (e) {
        return {error: String(e.message ?? e)};
    }
});
process.stdout.write(JSON.stringify({results}));
