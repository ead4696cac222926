// llama.cpp (node-llama-cpp) throughput on a GGUF file, the anchor of `./mooncakej bench engine`.
// Usage: node bench.mjs < {"model": F, "threads": [1, 2], "promptTokens": 256, "decodeTokens": 64, "repeats": 3}
// Prints {"results": [{"threads": T, "prefill_tok_s": x, "decode_tok_s": y, "prefill_runs": [...], "decode_runs": [...]}]}:
// the median of the repeats after one warm-up run, and every run's figure.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const input = JSON.parse(await new Promise((resolve) => {
    let s = "";
    process.stdin.on("data", (d) => s += d);
    process.stdin.on("end", () => resolve(s));
}));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: input.model});
const vocab = model.tokens.vocabularySize ?? 256;
const promptTokens = input.promptTokens ?? 512, decodeTokens = input.decodeTokens ?? 64, repeats = input.repeats ?? 3;
const prompt = [];
for (let i = 0; i < promptTokens; i++) prompt.push(1 + (i * 7919) % Math.max(2, vocab - 16));
function median(runs) {
    const s = [...runs].sort((a, b) => a - b);
    return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const results = [];
for (const threads of input.threads ?? [1, 2]) {
    const context = await model.createContext({contextSize: promptTokens + decodeTokens + 16, threads, batchSize: promptTokens,
        flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
    const sequence = context.getSequence();
    const prefills = [], decodes = [];
    for (let r = 0; r < repeats + 1; r++) { // the first run warms up
        await sequence.clearHistory();
        let t0 = performance.now();
        await sequence.evaluateWithoutGeneratingNewTokens(prompt);
        const prefill = promptTokens / ((performance.now() - t0) / 1000);
        // decode: feed one token at a time (batch 1), like a decode step
        let n = 0;
        t0 = performance.now();
        for await (const t of sequence.evaluate([prompt[0]], {temperature: 0, yieldEogToken: true})) {
            if (++n >= decodeTokens) break;
        }
        const decode = (n - 1) / ((performance.now() - t0) / 1000);
        if (r > 0) {
            prefills.push(Math.round(prefill * 10) / 10);
            decodes.push(Math.round(decode * 10) / 10);
        }
    }
    results.push({threads, prefill_tok_s: median(prefills), decode_tok_s: median(decodes),
        prefill_runs: prefills, decode_runs: decodes});
    await context.dispose();
}
process.stdout.write(JSON.stringify({results}));
await model.dispose();
process.exit(0);
