package dev.mooncakej.system;

import static org.assertj.core.api.Assertions.assertThat;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.helpers.ChatCompletionAccumulator;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionMessage;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import com.openai.models.chat.completions.ChatCompletionMessageToolCall;
import com.openai.models.chat.completions.ChatCompletionToolChoiceOption;
import com.openai.models.chat.completions.ChatCompletionToolMessageParam;
import com.openai.models.chat.completions.StructuredChatCompletionCreateParams;
import com.openai.models.responses.Response;
import com.openai.models.responses.ResponseCreateParams;
import com.openai.models.responses.ResponseFunctionToolCall;
import com.openai.models.responses.ResponseOutputItem;
import com.openai.models.responses.ResponseStreamEvent;
import com.openai.models.responses.ToolChoiceOptions;
import dev.langchain4j.agent.tool.ToolExecutionRequest;
import dev.langchain4j.agent.tool.ToolSpecification;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ToolExecutionResultMessage;
import dev.langchain4j.data.message.UserMessage;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.request.ToolChoice;
import dev.langchain4j.model.chat.request.json.JsonObjectSchema;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.mooncakej.engine.LlamaCppReference;
import dev.mooncakej.engine.constrain.RandomSchemas;
import dev.mooncakej.engine.generate.ModelGenerator;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Tool calls through a 1P+1D cluster. With the random-weight model, {@code tool_choice: required} and
 * a named function decode under the calls' schema, so every answer is a well-formed call whose
 * arguments satisfy its function's parameters, streamed (deltas reassembled, by hand and by the OpenAI
 * Java SDK) and not; the Java SDK's tool loop (two local functions, their results sent back, a final
 * answer) and its structured-output parse, the Node SDK's parse, runTools and stream helpers,
 * LangChain4j's tool API and the Responses API (Java SDK) run against it. With a simulated engine
 * scripted to answer in each family's syntax, {@code auto} finds the calls (and none in a plain answer).
 */
@Timeout(value = 12, unit = TimeUnit.MINUTES)
class ToolCallSystemTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static Path model;
    private static LocalCluster cluster;
    private static OpenAIClient openai;

    static final String TOOLS = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":"
            + "\"The weather now in a city\",\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{"
            + "\"type\":\"string\",\"maxLength\":20},\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":"
            + "[\"location\",\"unit\"],\"additionalProperties\":false}}},"
            + "{\"type\":\"function\",\"function\":{\"name\":\"add\",\"parameters\":{\"type\":\"object\",\"properties\""
            + ":{\"a\":{\"type\":\"number\"},\"b\":{\"type\":\"number\"}},\"required\":[\"a\",\"b\"],"
            + "\"additionalProperties\":false}}},"
            + "{\"type\":\"function\",\"function\":{\"name\":\"search\",\"parameters\":{\"type\":\"object\","
            + "\"properties\":{\"query\":{\"type\":\"string\",\"maxLength\":30},\"limit\":{\"type\":\"integer\"}},"
            + "\"required\":[\"query\"],\"additionalProperties\":false}}}]";

    @BeforeAll
    static void up() throws Exception {
        Path dir = Files.createTempDirectory("mooncakej-tools");
        model = dir.resolve("tiny.gguf");
        ModelGenerator.generate(ModelGenerator.Preset.TINY, model);
        cluster = LocalCluster.start(model, 1, 1, Map.of("MOONCAKEJ_CONDUCTOR_TTFTSLOSECONDS", "600"));
        openai = OpenAIOkHttpClient.builder()
                .baseUrl(cluster.url() + "/v1")
                .apiKey("not-needed")
                .timeout(Duration.ofSeconds(60))
                .build();
    }

    @AfterAll
    static void down() {
        if (cluster != null) cluster.close();
    }

    static String body(String toolChoice, int seed, boolean stream) {
        return "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in "
                + "Paris?\"}],\"tools\":" + TOOLS + ",\"tool_choice\":" + toolChoice + ",\"max_tokens\":120,"
                + "\"temperature\":1.0,\"seed\":" + seed + ",\"stream\":" + stream + "}";
    }

    /** The parameters schema of the named function in {@link #TOOLS}. */
    static JsonNode parameters(String name) {
        for (JsonNode t : JSON.readTree(TOOLS))
            if (t.get("function").get("name").asString().equals(name))
                return t.get("function").get("parameters");
        throw new AssertionError("no tool " + name);
    }

    /** Name and arguments of each call of a streamed answer, reassembled from the deltas by index. */
    static List<String[]> streamedCalls(String sse, String[] finish) {
        List<String[]> calls = new ArrayList<>();
        for (String line : sse.split("\n")) {
            if (!line.startsWith("data:") || line.contains("[DONE]")) continue;
            JsonNode choice =
                    JSON.readTree(line.substring(5).trim()).path("choices").path(0);
            if (choice.path("finish_reason").isString())
                finish[0] = choice.get("finish_reason").asString();
            for (JsonNode d : choice.path("delta").path("tool_calls")) {
                int i = d.get("index").asInt();
                if (d.has("id")) {
                    assertThat(i).isEqualTo(calls.size());
                    assertThat(d.get("function").get("name").isString())
                            .as("id and name first")
                            .isTrue();
                    calls.add(new String[] {d.get("function").get("name").asString(), ""});
                }
                calls.get(i)[1] += d.path("function").path("arguments").asString("");
            }
        }
        return calls;
    }

    @Test
    void requiredAndNamedChoicesGiveCallsWhoseArgumentsSatisfyTheirFunction() throws Exception {
        for (int seed = 1; seed <= 8; seed++) {
            HttpResponse<String> r =
                    LocalCluster.post(cluster.url() + "/v1/chat/completions", body("\"required\"", seed, false));
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode choice = JSON.readTree(r.body()).get("choices").get(0);
            assertThat(choice.get("finish_reason").asString()).as(r.body()).isIn("tool_calls", "length");
            JsonNode calls = choice.get("message").get("tool_calls");
            assertThat(calls.isArray() && !calls.isEmpty()).as(r.body()).isTrue();
            assertThat(calls.size()).as("parallel calls allowed by default").isGreaterThanOrEqualTo(1);
            List<String[]> whole = new ArrayList<>();
            for (JsonNode c : calls) {
                assertThat(c.get("id").asString()).startsWith("call_");
                assertThat(c.get("type").asString()).isEqualTo("function");
                String name = c.get("function").get("name").asString();
                String args = c.get("function").get("arguments").asString();
                assertThat(RandomSchemas.violation(parameters(name), JSON.readTree(args), "#"))
                        .as("seed %d, %s(%s)", seed, name, args)
                        .isNull();
                whole.add(new String[] {name, args});
            }
            HttpResponse<String> s =
                    LocalCluster.post(cluster.url() + "/v1/chat/completions", body("\"required\"", seed, true));
            String[] finish = new String[1];
            List<String[]> streamed = streamedCalls(s.body(), finish);
            assertThat(streamed).as("seed %d streamed", seed).hasSameSizeAs(whole);
            for (int i = 0; i < whole.size(); i++) assertThat(streamed.get(i)).containsExactly(whole.get(i));
            assertThat(finish[0]).isEqualTo(choice.get("finish_reason").asString());
        }
        for (int seed = 1; seed <= 3; seed++) {
            HttpResponse<String> r = LocalCluster.post(
                    cluster.url() + "/v1/chat/completions",
                    body("{\"type\":\"function\",\"function\":{\"name\":\"add\"}}", seed, false));
            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
            JsonNode calls =
                    JSON.readTree(r.body()).get("choices").get(0).get("message").get("tool_calls");
            assertThat(calls.size()).isEqualTo(1);
            assertThat(calls.get(0).get("function").get("name").asString()).isEqualTo("add");
            JsonNode args =
                    JSON.readTree(calls.get(0).get("function").get("arguments").asString());
            assertThat(RandomSchemas.violation(parameters("add"), args, "#"))
                    .as("%s", args)
                    .isNull();
        }
        // parallel_tool_calls false: exactly one call
        HttpResponse<String> one = LocalCluster.post(
                cluster.url() + "/v1/chat/completions",
                body("\"required\"", 5, false)
                        .replace("\"max_tokens\"", "\"parallel_tool_calls\":false,\"max_tokens\""));
        assertThat(JSON.readTree(one.body())
                        .get("choices")
                        .get(0)
                        .get("message")
                        .get("tool_calls")
                        .size())
                .as(one.body())
                .isEqualTo(1);
    }

    /** A local function the SDK's loop runs: the weather in a city. */
    public record GetWeather(String location) {}

    /** A local function the SDK's loop runs: a sum. */
    public record Add(double a, double b) {}

    /** What a structured-output parse fills in. */
    public record Answer(String city, long temperature, boolean sunny) {}

    @Test
    void theJavaSdkToolLoopStructuredParseAndStreamedDeltas() {
        ChatCompletionCreateParams.Builder params = ChatCompletionCreateParams.builder()
                .model("mooncakej-tiny")
                .addUserMessage("What is the weather in Paris, and 2 + 3?")
                .addTool(GetWeather.class)
                .addTool(Add.class)
                .toolChoice(ChatCompletionToolChoiceOption.Auto.REQUIRED)
                .maxCompletionTokens(100)
                .temperature(0.7)
                .seed(3);
        ChatCompletion first = openai.chat().completions().create(params.build());
        ChatCompletionMessage asked = first.choices().get(0).message();
        List<ChatCompletionMessageToolCall> calls = asked.toolCalls().orElseThrow();
        assertThat(calls).isNotEmpty();
        params.addMessage(asked);
        for (ChatCompletionMessageToolCall call : calls) {
            ChatCompletionMessageFunctionToolCall fn = call.asFunction();
            String result = switch (fn.function().name()) {
                case "GetWeather" ->
                    "18 C and sunny in "
                            + fn.function().arguments(GetWeather.class).location();
                case "Add" -> {
                    Add a = fn.function().arguments(Add.class);
                    yield String.valueOf(a.a() + a.b());
                }
                default ->
                    throw new AssertionError(
                            "no local function " + fn.function().name());
            };
            params.addMessage(ChatCompletionToolMessageParam.builder()
                    .toolCallId(fn.id())
                    .content(result)
                    .build());
        }
        // the final answer: the results are in the prompt (the tool messages rendered), no call forced
        ChatCompletion last = openai.chat()
                .completions()
                .create(params.toolChoice(ChatCompletionToolChoiceOption.Auto.NONE)
                        .build());
        assertThat(last.choices().get(0).message().content()).isPresent();
        assertThat(last.choices().get(0).message().toolCalls().orElse(List.of()))
                .isEmpty();
        assertThat(last.usage().orElseThrow().promptTokens())
                .as("the second turn carries the calls and results")
                .isGreaterThan(first.usage().orElseThrow().promptTokens());

        // streamed tool-call deltas, reassembled by the SDK's accumulator: the non-streamed calls
        ChatCompletionCreateParams again = ChatCompletionCreateParams.builder()
                .model("mooncakej-tiny")
                .addUserMessage("What is the weather in Paris, and 2 + 3?")
                .addTool(GetWeather.class)
                .addTool(Add.class)
                .toolChoice(ChatCompletionToolChoiceOption.Auto.REQUIRED)
                .maxCompletionTokens(100)
                .temperature(0.7)
                .seed(3)
                .build();
        ChatCompletionAccumulator acc = ChatCompletionAccumulator.create();
        try (StreamResponse<ChatCompletionChunk> s = openai.chat().completions().createStreaming(again)) {
            s.stream().forEach(acc::accumulate);
        }
        List<ChatCompletionMessageToolCall> streamed =
                acc.chatCompletion().choices().get(0).message().toolCalls().orElseThrow();
        assertThat(streamed).hasSameSizeAs(calls);
        for (int i = 0; i < calls.size(); i++) {
            assertThat(streamed.get(i).asFunction().function().name())
                    .isEqualTo(calls.get(i).asFunction().function().name());
            assertThat(streamed.get(i).asFunction().function().arguments())
                    .isEqualTo(calls.get(i).asFunction().function().arguments());
        }

        // structured output: the SDK derives a strict schema from the record and parses the answer into it
        StructuredChatCompletionCreateParams<Answer> structured = ChatCompletionCreateParams.builder()
                .model("mooncakej-tiny")
                .addUserMessage("The weather in Paris, as JSON")
                .maxCompletionTokens(80)
                .temperature(1.0)
                .seed(4)
                .responseFormat(Answer.class)
                .build();
        Answer a = openai.chat()
                .completions()
                .create(structured)
                .choices()
                .get(0)
                .message()
                .content()
                .orElseThrow();
        assertThat(a.city()).isNotNull();
    }

    /**
     * {@code /v1/responses} through the OpenAI Java SDK: a text answer, a second turn by
     * {@code previous_response_id} that reuses the first turn's KV (cached input tokens), a function
     * call with its output sent back, and streaming events whose deltas join into the completed text.
     */
    @Test
    void theResponsesApiWithTheJavaSdk() throws Exception {
        String instructions = "You are a terse assistant. ".repeat(12);
        Response first = openai.responses()
                .create(ResponseCreateParams.builder()
                        .model("mooncakej-tiny")
                        .instructions(instructions)
                        .input("Hello, my name is Ada.")
                        .maxOutputTokens(12)
                        .temperature(0.0)
                        .build());
        assertThat(first.id()).startsWith("resp_");
        String text = first.output()
                .get(0)
                .asMessage()
                .content()
                .get(0)
                .asOutputText()
                .text();
        assertThat(text).isNotEmpty();
        long firstInput = first.usage().orElseThrow().inputTokens();
        Response second = openai.responses()
                .create(ResponseCreateParams.builder()
                        .model("mooncakej-tiny")
                        .instructions(instructions)
                        .previousResponseId(first.id())
                        .input("What is my name?")
                        .maxOutputTokens(12)
                        .temperature(0.0)
                        .build());
        assertThat(second.previousResponseId()).contains(first.id());
        assertThat(second.usage().orElseThrow().inputTokens())
                .as("the second turn carries the first (and its answer)")
                .isGreaterThan(firstInput + first.usage().orElseThrow().outputTokens());
        assertThat(second.usage().orElseThrow().inputTokensDetails().cachedTokens())
                .as("the first turn's KV is reused")
                .isPositive();
        HttpResponse<String> unknown = LocalCluster.post(
                cluster.url() + "/v1/responses",
                "{\"model\":\"mooncakej-tiny\",\"input\":\"hi\",\"previous_response_id\":\"resp_nope\"}");
        assertThat(unknown.statusCode()).isEqualTo(404);
        assertThat(unknown.body()).contains("previous_response_id");
        HttpResponse<String> builtin = LocalCluster.post(
                cluster.url() + "/v1/responses",
                "{\"model\":\"mooncakej-tiny\",\"input\":\"hi\",\"tools\":[{\"type\":\"web_search\"}]}");
        assertThat(builtin.statusCode()).isEqualTo(400);
        assertThat(builtin.body()).contains("unsupported_parameter").contains("web_search");

        // a function call, its output sent back, the final answer
        Response asked = openai.responses()
                .create(ResponseCreateParams.builder()
                        .model("mooncakej-tiny")
                        .input("The weather in Paris?")
                        .addTool(GetWeather.class)
                        .toolChoice(ToolChoiceOptions.REQUIRED)
                        .maxOutputTokens(60)
                        .temperature(0.5)
                        .build());
        ResponseFunctionToolCall call = asked.output().stream()
                .filter(ResponseOutputItem::isFunctionCall)
                .map(ResponseOutputItem::asFunctionCall)
                .findFirst()
                .orElseThrow();
        assertThat(call.name()).isEqualTo("GetWeather");
        assertThat(JSON.readTree(call.arguments()).get("location").isString()).isTrue();
        HttpResponse<String> answered = LocalCluster.post(
                cluster.url() + "/v1/responses",
                JSON.writeValueAsString(Map.of(
                        "model",
                        "mooncakej-tiny",
                        "previous_response_id",
                        asked.id(),
                        "input",
                        List.of(Map.of(
                                "type", "function_call_output", "call_id", call.callId(), "output", "18 C, sunny")),
                        "max_output_tokens",
                        8)));
        assertThat(answered.statusCode()).as(answered.body()).isEqualTo(200);
        assertThat(JSON.readTree(answered.body())
                        .get("output")
                        .get(0)
                        .get("type")
                        .asString())
                .isEqualTo("message");

        // streamed: the deltas join into the completed response's text
        StringBuilder deltas = new StringBuilder();
        Response[] completed = new Response[1];
        try (StreamResponse<ResponseStreamEvent> s = openai.responses()
                .createStreaming(ResponseCreateParams.builder()
                        .model("mooncakej-tiny")
                        .input("Tell me a story.")
                        .maxOutputTokens(16)
                        .temperature(0.0)
                        .build())) {
            s.stream().forEach(ev -> {
                ev.outputTextDelta().ifPresent(d -> deltas.append(d.delta()));
                ev.completed().ifPresent(c -> completed[0] = c.response());
                ev.incomplete().ifPresent(c -> completed[0] = c.response());
            });
        }
        assertThat(completed[0])
                .as("a response.completed (or incomplete) event")
                .isNotNull();
        assertThat(deltas.toString())
                .isEqualTo(completed[0]
                        .output()
                        .get(0)
                        .asMessage()
                        .content()
                        .get(0)
                        .asOutputText()
                        .text());
    }

    /**
     * The official OpenAI Node SDK (tools/llama-ref/openai-sdk.mjs, openai 6.49.0): its structured-output
     * {@code parse}, its tool-run helper calling a local function with the arguments the server produced
     * (the call and the result message in its transcript, then a final answer), and its stream helper
     * reassembling tool-call deltas into the calls the non-streamed request returns.
     */
    @Test
    void theNodeSdkParseToolRunnerAndStreamedToolCalls() throws Exception {
        Path out = Files.createTempFile("openai-node", ".json");
        Path err = Files.createTempFile("openai-node", ".err");
        Process p = new ProcessBuilder("node", "openai-sdk.mjs", cluster.url(), "mooncakej-tiny")
                .directory(LlamaCppReference.referenceDir().toFile())
                .redirectOutput(out.toFile())
                .redirectError(err.toFile())
                .start();
        assertThat(p.waitFor(3, TimeUnit.MINUTES))
                .as("the Node SDK script ends")
                .isTrue();
        assertThat(p.exitValue())
                .as("node openai-sdk.mjs: %s", Files.readString(err))
                .isZero();
        JsonNode r = JSON.readTree(Files.readString(out));
        System.out.println("OpenAI Node SDK: " + r);
        JsonNode parsed = r.get("parsed");
        assertThat(parsed.get("city").isString()
                        && parsed.get("temperature").isIntegralNumber()
                        && parsed.get("sunny").isBoolean())
                .as("parse() filled the schema: %s", parsed)
                .isTrue();
        assertThat(r.get("parsedFinish").asString()).isEqualTo("stop");
        JsonNode calls = r.get("calls");
        assertThat(calls.size()).as("the local function ran").isPositive();
        assertThat(calls.get(0).get(0).asString()).isEqualTo("get_weather");
        assertThat(calls.get(0).get(1).get("location").isString()).isTrue();
        List<String> roles = new ArrayList<>();
        r.get("roles").forEach(x -> roles.add(x.asString()));
        assertThat(roles).containsSubsequence("user", "assistant", "tool");
        assertThat(r.get("final").isString()).as("a final answer").isTrue();
        assertThat(r.get("streamedCalls")).as("streamed deltas reassembled").isEqualTo(r.get("wholeCalls"));
        assertThat(r.get("wholeCalls").size()).isPositive();
        assertThat(r.get("streamedFinish").asString()).isEqualTo("tool_calls");
    }

    /**
     * LangChain4j's OpenAI chat model and tool API: a tool specification, a forced call whose
     * {@code ToolExecutionRequest} carries arguments satisfying it, the result sent back as a
     * {@code ToolExecutionResultMessage}, and a final answer.
     */
    @Test
    void langChain4jToolsAgainstTheCluster() {
        OpenAiChatModel lc = OpenAiChatModel.builder()
                .baseUrl(cluster.url() + "/v1")
                .apiKey("not-needed")
                .modelName("mooncakej-tiny")
                .maxTokens(80)
                .temperature(0.5)
                .seed(7)
                .timeout(Duration.ofSeconds(60))
                .build();
        ToolSpecification weather = ToolSpecification.builder()
                .name("get_weather")
                .description("The weather now in a city")
                .parameters(JsonObjectSchema.builder()
                        .addStringProperty("location")
                        .required(List.of("location"))
                        .build())
                .build();
        UserMessage ask = UserMessage.from("What is the weather in Paris?");
        ChatResponse first = lc.chat(ChatRequest.builder()
                .messages(ask)
                .toolSpecifications(weather)
                .toolChoice(ToolChoice.REQUIRED)
                .build());
        AiMessage ai = first.aiMessage();
        assertThat(ai.hasToolExecutionRequests()).as("%s", ai).isTrue();
        ToolExecutionRequest call = ai.toolExecutionRequests().get(0);
        assertThat(call.name()).isEqualTo("get_weather");
        assertThat(JSON.readTree(call.arguments()).get("location").isString())
                .as(call.arguments())
                .isTrue();
        ChatResponse last = lc.chat(ChatRequest.builder()
                .messages(ask, ai, ToolExecutionResultMessage.from(call, "18 C and sunny"))
                .toolSpecifications(weather)
                .toolChoice(ToolChoice.AUTO)
                .build());
        assertThat(last.aiMessage().text()).as("a final answer").isNotNull();
    }

    /** Each family's syntax, written by a simulated engine scripted to answer with it, under {@code auto}. */
    @Test
    void autoFindsEachFamilysCallsAndNoneInAPlainAnswer() throws Exception {
        String args = "{\"location\": \"Paris\", \"unit\": \"celsius\"}";
        Map<String, String> replies = Map.of(
                "hermes",
                        "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " + args
                                + "}\n</tool_call>",
                "llama3_json", "{\"name\": \"get_weather\", \"parameters\": " + args + "}",
                "mistral", "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": " + args + "}]");
        for (var family : replies.entrySet()) {
            try (LocalCluster c = simulated(family.getKey(), family.getValue())) {
                String req =
                        "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}],"
                                + "\"tools\":" + TOOLS + ",\"max_tokens\":200,\"temperature\":0";
                HttpResponse<String> r = LocalCluster.post(c.url() + "/v1/chat/completions", req + "}");
                assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                JsonNode choice = JSON.readTree(r.body()).get("choices").get(0);
                assertThat(choice.get("finish_reason").asString())
                        .as("%s: %s", family.getKey(), r.body())
                        .isEqualTo("tool_calls");
                JsonNode call = choice.get("message").get("tool_calls").get(0);
                assertThat(call.get("function").get("name").asString()).isEqualTo("get_weather");
                assertThat(JSON.readTree(call.get("function").get("arguments").asString()))
                        .isEqualTo(JSON.readTree(args));
                String content = choice.get("message").path("content").asString("");
                assertThat(content).doesNotContain("get_weather");
                String[] finish = new String[1];
                List<String[]> streamed = streamedCalls(
                        LocalCluster.post(c.url() + "/v1/chat/completions", req + ",\"stream\":true}")
                                .body(),
                        finish);
                assertThat(streamed).hasSize(1);
                assertThat(streamed.get(0)[0]).isEqualTo("get_weather");
                assertThat(JSON.readTree(streamed.get(0)[1])).isEqualTo(JSON.readTree(args));
                assertThat(finish[0]).isEqualTo("tool_calls");
            }
        }
        try (LocalCluster c = simulated("hermes", "It is sunny in Paris, 18 C.")) {
            HttpResponse<String> r = LocalCluster.post(
                    c.url() + "/v1/chat/completions",
                    "{\"model\":\"mooncakej-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}],"
                            + "\"tools\":" + TOOLS + ",\"max_tokens\":200,\"temperature\":0}");
            JsonNode choice = JSON.readTree(r.body()).get("choices").get(0);
            assertThat(choice.get("finish_reason").asString()).isEqualTo("stop");
            assertThat(choice.get("message").has("tool_calls")).isFalse();
            assertThat(choice.get("message").get("content").asString()).isEqualTo("It is sunny in Paris, 18 C.");
        }
    }

    private static LocalCluster simulated(String parser, String reply) throws Exception {
        return LocalCluster.start(
                model,
                1,
                1,
                Map.of(
                        "MOONCAKEJ_PREFILL_SIMREPLY", reply,
                        "MOONCAKEJ_DECODE_SIMREPLY", reply,
                        "MOONCAKEJ_CONDUCTOR_TOOLPARSER", parser),
                "--engine",
                "simulated",
                "--sim-time-scale",
                "0.01");
    }
}
