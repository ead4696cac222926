// llama.cpp (through node-llama-cpp) as an independent reference for the built-in engine.
// Usage: node reference.mjs < request.json > answer.json
// request: {"model": "file.gguf", "prompts": ["text", ...], "continuation": 32, "threads": 1}
// answer:  {"results": [{"tokens": [...], "logprobs": [[vocab floats] per prompt position], "greedy": [...]}, ...]}
// "specialTokens": true adds each prompt tokenized with special-token text parsed (results[i].specialTokens).
// logprobs[i] is the next-token distribution after prompt token i (log of llama.cpp's softmax; -1e30 for 0).
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const input = JSON.parse(await new Promise((resolve) => {
    let s = "";
    process.stdin.on("data", (d) => s += d);
    process.stdin.on("end", () => resolve(s));
}));

const logs = [];
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.warn,
    logger: (level, message) => logs.push(String(message))});
let model;
try {
    model = await llama.loadModel({modelPath: input.model});
} catch (e) {
    await new Promise((r) => setTimeout(r, 300));
    process.stderr.write("llama.cpp could not load " + input.model + ": " + e.message + "\n" + logs.join("\n") + "\n");
    process.exit(3);
}
const context = await model.createContext({
    contextSize: input.contextSize ?? 1024, threads: input.threads ?? 1, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", batchSize: 512,
});
const sequence = context.getSequence();
const vocab = model.tokens.vocabularySize ?? model.fileInfo.metadata.tokenizer.ggml.tokens.length;

const results = [];
for (const text of input.prompts) {
    const tokens = Array.from(model.tokenize(text, false));
    const result = {tokens};
    if (input.specialTokens) result.specialTokens = Array.from(model.tokenize(text, true));
    if (input.probabilities !== false) {
        await sequence.clearHistory();
        const out = await sequence.controlledEvaluate(tokens.map((t) => [t, {generateNext: {probabilities: true, options: {temperature: 0}}}]));
        result.logprobs = out.map((o) => {
            const row = new Array(vocab).fill(-1e30);
            for (const [tok, p] of o.next.probabilities) row[tok] = p > 0 ? Math.log(p) : -1e30;
            return row;
        });
    }
    if ((input.continuation ?? 0) > 0) {
        await sequence.clearHistory();
        const greedy = [];
        for await (const t of sequence.evaluate(tokens, {temperature: 0, yieldEogToken: true})) {
            greedy.push(t);
            if (greedy.length >= input.continuation) break;
        }
        result.greedy = greedy;
    }
    results.push(result);
}
process.stdout.write(JSON.stringify({vocab, results}));
await context.dispose();
await model.dispose();
process.exit(0);
