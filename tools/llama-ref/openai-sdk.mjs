// The official OpenAI Node SDK against a running Mooncake-J conductor: structured-output parse, the
// tool-run helper with two local functions, and streamed tool-call deltas reassembled by the SDK.
// Usage: node openai-sdk.mjs BASE_URL MODEL   (prints one JSON object; exits 1 on an SDK error)
import OpenAI from "openai";

const [base, model] = process.argv.slice(2);
const client = new OpenAI({apiKey: "not-needed", baseURL: base + "/v1", maxRetries: 0});
const out = {};

const weatherSchema = {
    type: "object",
    properties: {city: {type: "string", maxLength: 20}, temperature: {type: "integer"}, sunny: {type: "boolean"}},
    required: ["city", "temperature", "sunny"],
    additionalProperties: false,
};
const parsed = await client.chat.completions.parse({
    model,
    messages: [{role: "user", content: "The weather in Paris, as JSON"}],
    response_format: {type: "json_schema", json_schema: {name: "weather", schema: weatherSchema, strict: true}},
    max_tokens: 120,
    temperature: 1,
    seed: 5,
});
out.parsed = parsed.choices[0].message.parsed;
out.parsedFinish = parsed.choices[0].finish_reason;

const locationParams = {
    type: "object",
    properties: {location: {type: "string", maxLength: 20}},
    required: ["location"],
    additionalProperties: false,
};
const addParams = {
    type: "object",
    properties: {a: {type: "number"}, b: {type: "number"}},
    required: ["a", "b"],
    additionalProperties: false,
};
const calls = [];
const runner = client.chat.completions.runTools({
    model,
    messages: [{role: "user", content: "What is the weather in Paris, and 2 + 3?"}],
    tools: [
        {
            type: "function",
            function: {
                name: "get_weather", parameters: locationParams, parse: JSON.parse,
                function: (args) => {
                    calls.push(["get_weather", args]);
                    return "18 C and sunny in " + args.location;
                },
            },
        },
        {
            type: "function",
            function: {
                name: "add", parameters: addParams, parse: JSON.parse,
                function: (args) => {
                    calls.push(["add", args]);
                    return String(args.a + args.b);
                },
            },
        },
    ],
    tool_choice: {type: "function", function: {name: "get_weather"}},
    max_tokens: 80,
    temperature: 0.5,
    seed: 2,
});
await runner.done();
out.calls = calls;
out.roles = runner.messages.map((m) => m.role);
const plainTools = [
    {type: "function", function: {name: "get_weather", parameters: locationParams}},
    {type: "function", function: {name: "add", parameters: addParams}},
];
const final = await client.chat.completions.create({
    model, messages: runner.messages, tools: plainTools, tool_choice: "none", max_tokens: 16,
});
out.final = final.choices[0].message.content;
out.finalPromptTokens = final.usage.prompt_tokens;

const ask = {
    model,
    messages: [{role: "user", content: "What is 2 + 3, and the weather in Oslo?"}],
    tools: plainTools,
    tool_choice: "required",
    max_tokens: 80,
    temperature: 0.5,
    seed: 3,
};
const streamed = await client.chat.completions.stream(ask).finalChatCompletion();
const whole = await client.chat.completions.create(ask);
const pairs = (c) => (c.choices[0].message.tool_calls ?? []).map((t) => [t.function.name, t.function.arguments]);
out.streamedCalls = pairs(streamed);
out.wholeCalls = pairs(whole);
out.streamedFinish = streamed.choices[0].finish_reason;
console.log(JSON.stringify(out));
