package dev.mooncakej.conductor.api;

import dev.mooncakej.conductor.ConductorProperties;
import dev.mooncakej.conductor.metrics.ConductorMetrics;
import dev.mooncakej.conductor.model.ServedModel;
import dev.mooncakej.conductor.request.Generation;
import dev.mooncakej.conductor.request.GenerationEvent;
import dev.mooncakej.conductor.request.GenerationRequest;
import dev.mooncakej.conductor.request.RequestFailure;
import dev.mooncakej.conductor.request.RequestPath;
import dev.mooncakej.conductor.tools.ToolCallStream;
import dev.mooncakej.web.Traced;
import dev.mooncakej.web.Tracing;
import jakarta.annotation.PreDestroy;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.RejectedExecutionException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.core.io.buffer.DataBufferLimitException;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.http.codec.ServerSentEvent;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RequestHeader;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.server.ServerWebExchange;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** The OpenAI-compatible API: {@code /v1/models}, {@code /v1/completions}, {@code /v1/chat/completions}. */
@RestController
public class OpenAiController {
    /** Response headers naming the workers that served a request (streams too). */
    public static final String PREFILL_HEADER = "x-mooncakej-prefill";

    public static final String DECODE_HEADER = "x-mooncakej-decode";

    private static final Logger LOG = LoggerFactory.getLogger(OpenAiController.class);
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final ServedModel model;
    private final RequestParser parser;
    private final RequestPath service;
    private final ConductorMetrics metrics;
    private final long created = System.currentTimeMillis() / 1000;

    private final ApiKeys keys;
    private final ConductorProperties props;

    private final ResponsesApi responses;
    private final Tracing tracing;

    public OpenAiController(
            ServedModel model,
            RequestParser parser,
            RequestPath service,
            ConductorMetrics metrics,
            ApiKeys keys,
            ConductorProperties props,
            ResponsesApi responses,
            Tracing tracing) {
        this.responses = responses;
        this.tracing = tracing;
        this.keys = keys;
        this.props = props;
        this.model = model;
        this.parser = parser;
        this.service = service;
        this.metrics = metrics;
    }

    @GetMapping("/v1/models")
    public ResponseEntity<?> models() {
        List<Map<String, Object>> data = new ArrayList<>();
        for (String name : model.names()) data.add(modelObject(name));
        return ResponseEntity.ok(Map.of("object", "list", "data", data));
    }

    /** One model, as OpenAI's retrieve-model answers; 404 {@code model_not_found} for a name not served. */
    @GetMapping("/v1/models/{id}")
    public ResponseEntity<?> model(@PathVariable("id") String id) {
        if (model.serves(id)) return ResponseEntity.ok(modelObject(id));
        String shown = id.length() <= 64 ? id : id.substring(0, 64) + "...";
        return error(
                new ApiException(
                        404,
                        "invalid_request_error",
                        "model",
                        "model_not_found",
                        "the model '" + shown + "' does not exist; this server serves " + model.names()
                                + " (see GET /v1/models)",
                        null),
                "-");
    }

    private Map<String, Object> modelObject(String name) {
        return Map.of("id", name, "object", "model", "created", created, "owned_by", "mooncakej");
    }

    /** vLLM's {@code /tokenize}: {@code count}, {@code max_model_len}, {@code tokens}. */
    @PostMapping(value = "/tokenize", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Mono<ResponseEntity<?>> tokenize(@RequestBody(required = false) String body, ServerWebExchange exchange) {
        ApiKeys.Tenant tenant = exchange.getAttribute(ApiKeyFilter.TENANT);
        return tokenizers
                .<ResponseEntity<?>>submit(tenant == null ? "-" : tenant.name(), () -> {
                    int[] ids = parser.tokenize(body, tenant == null ? null : tenant.salt());
                    Map<String, Object> out = new LinkedHashMap<>();
                    out.put("count", ids.length);
                    out.put("max_model_len", model.contextLength());
                    out.put("tokens", ids);
                    out.put("token_strs", null);
                    return ResponseEntity.ok(out);
                })
                .onErrorResume(ApiException.class, e -> Mono.just(error(e, "-")));
    }

    /** vLLM's {@code /detokenize}: {@code prompt}, the text of the ids. */
    @PostMapping(value = "/detokenize", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Mono<ResponseEntity<?>> detokenize(@RequestBody(required = false) String body, ServerWebExchange exchange) {
        ApiKeys.Tenant tenant = exchange.getAttribute(ApiKeyFilter.TENANT);
        return tokenizers
                .<ResponseEntity<?>>submit(
                        tenant == null ? "-" : tenant.name(),
                        () -> ResponseEntity.ok(Map.of("prompt", parser.detokenize(body))))
                .onErrorResume(ApiException.class, e -> Mono.just(error(e, "-")));
    }

    @PostMapping(value = "/v1/chat/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Mono<ResponseEntity<?>> chat(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            @RequestHeader(value = Tracing.TRACEPARENT, required = false) String traceparent,
            ServerWebExchange exchange) {
        return complete(body, true, rid, exchange.getAttribute(ApiKeyFilter.TENANT), traceparent);
    }

    @PostMapping(value = "/v1/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Mono<ResponseEntity<?>> completions(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            @RequestHeader(value = Tracing.TRACEPARENT, required = false) String traceparent,
            ServerWebExchange exchange) {
        return complete(body, false, rid, exchange.getAttribute(ApiKeyFilter.TENANT), traceparent);
    }

    /**
     * A request that passed the cheap checks from its headers ({@link ApiKeyFilter}: the key, its
     * concurrency and request-rate limits, released when the exchange ends; {@link BodyLimitFilter}):
     * parsed, checked for the model, bounded by context from its size, tokenized on the fair pool,
     * charged to its key's token rate, then run. Its span (a client's {@code traceparent} continued)
     * ends with the response: a stream's when its last event is sent or the client leaves.
     */
    private Mono<ResponseEntity<?>> complete(
            String body, boolean chat, String rid, ApiKeys.Tenant tenant, String traceparent) {
        String requestId = rid != null && rid.matches("[A-Za-z0-9._-]{1,64}")
                ? rid
                : UUID.randomUUID().toString();
        Traced span = tracing.serve("mooncakej.request", traceparent)
                .tag("mooncakej.request_id", requestId)
                .tag("mooncakej.endpoint", chat ? "/v1/chat/completions" : "/v1/completions");
        // templates and tokenization off the event loop, on a bounded pool shared fairly between keys: a
        // burst of long prompts queues there (or is refused with 503 when the queue is full) instead of
        // stalling every stream or another key's requests
        return tokenizers
                .submit(tenant == null ? "-" : tenant.name(), () -> {
                    String salt = tenant == null ? null : tenant.salt();
                    List<GenerationRequest> gs = chat
                            ? List.of(parser.parse(body, true, requestId, salt))
                            : parser.parseCompletions(body, requestId, salt);
                    gs = gs.stream().map(g -> g.traced(span)).toList();
                    long charged = 0;
                    for (GenerationRequest g : gs) charged += g.promptTokens().length + (long) g.n() * g.maxTokens();
                    keys.admitTokens(tenant, charged);
                    return gs;
                })
                .flatMap(gs -> gs.size() == 1 && gs.get(0).n() == 1
                        ? generate(gs.get(0), chat, requestId)
                        : several(gs, requestId))
                .transform(m -> refusals(m, requestId))
                .transform(m -> traced(m, span));
    }

    /** Ends {@code span} with the response: a streamed body's when it ends, otherwise when the answer is ready. */
    private static Mono<ResponseEntity<?>> traced(Mono<ResponseEntity<?>> m, Traced span) {
        if (!span.on()) return m;
        return m.<ResponseEntity<?>>map(r -> {
                    span.tag("http.response.status_code", r.getStatusCode().value());
                    if (!(r.getBody() instanceof Flux<?> body)) {
                        span.end();
                        return r;
                    }
                    Flux<?> ending = body.doFinally(signal -> span.tag(
                                    "mooncakej.stream.end", signal.toString().toLowerCase(Locale.ROOT))
                            .end());
                    return new ResponseEntity<>(ending, r.getHeaders(), r.getStatusCode());
                })
                .doOnCancel(span::end)
                .doOnError(e -> span.error(e).end());
    }

    /** A stream's failure as its last events: the OpenAI error body, then {@code [DONE]}. */
    private Flux<ServerSentEvent<String>> streamFailure(Throwable e, String requestId) {
        metrics.countOutcome("error");
        if (!(e instanceof ApiException)) LOG.error("[{}] stream failed", requestId, e);
        ApiException api = e instanceof ApiException a
                ? a
                : new ApiException(
                        500,
                        "server_error",
                        null,
                        "internal_error",
                        "the request failed (request " + requestId + "; the conductor's log says why)",
                        null);
        return Flux.just(sse(json(api.body())), sse("[DONE]"));
    }

    /** A request's refusals before it runs: a bad request, a limit, or a full tokenizer queue (503). */
    private Mono<ResponseEntity<?>> refusals(Mono<ResponseEntity<?>> m, String requestId) {
        return m.onErrorResume(ApiException.class, e -> {
                    metrics.countOutcome(e.status() == 429 ? "rejected" : "bad_request");
                    return Mono.just(error(e, requestId));
                })
                .onErrorResume(RejectedExecutionException.class, e -> {
                    metrics.countOutcome("rejected");
                    return Mono.just(error(
                            new ApiException(
                                    503,
                                    "service_unavailable",
                                    null,
                                    "overloaded",
                                    "too many prompts are waiting to be tokenized; retry",
                                    1),
                            requestId));
                });
    }

    /**
     * Where prompts are rendered and tokenized: as many threads as cores, at most 256 prompts queued
     * in all and 64 of one key, taken from the keys in turn.
     */
    private final FairTokenizerPool tokenizers =
            new FairTokenizerPool(Runtime.getRuntime().availableProcessors(), 256, 64);

    @PreDestroy
    void closeTokenizers() {
        tokenizers.close();
    }

    /** Runs an admitted request (its key's slot is released by {@link ApiKeyFilter} when the exchange ends). */
    private Mono<ResponseEntity<?>> generate(GenerationRequest g, boolean chat, String requestId) {
        String id = (chat ? "chatcmpl-" : "cmpl-") + requestId.replace("-", "");
        long now = System.currentTimeMillis() / 1000;
        Mono<Generation> started = service.generate(g).onErrorMap(RequestFailure.class, ApiException::of);
        Mono<ResponseEntity<?>> response;
        if (g.stream()) {
            response = started.map(gen -> {
                Flux<ServerSentEvent<String>> sse = streamChunks(g, id, now, events(gen), gen.promptLogprobs())
                        .doOnComplete(() -> metrics.countOutcome("ok"))
                        .doOnCancel(() -> metrics.countOutcome("cancelled"))
                        .onErrorResume(e -> streamFailure(e, requestId));
                return ResponseEntity.ok()
                        .header("X-Request-Id", requestId)
                        .header(PREFILL_HEADER, gen.prefill())
                        .header(DECODE_HEADER, gen.decode())
                        .contentType(MediaType.TEXT_EVENT_STREAM)
                        .body(sse);
            });
        } else {
            response = started.flatMap(gen -> events(gen).collectList().map(list -> {
                metrics.countOutcome("ok");
                return ResponseEntity.ok()
                        .header("X-Request-Id", requestId)
                        .header(PREFILL_HEADER, gen.prefill())
                        .header(DECODE_HEADER, gen.decode())
                        .body(full(g, id, now, list, gen.promptLogprobs()));
            }));
        }
        return response.onErrorResume(ApiException.class, e -> {
                    metrics.countOutcome(e.status() == 429 ? "rejected" : "error");
                    return Mono.just(error(e, requestId));
                })
                .onErrorResume(e -> {
                    LOG.error("[{}] request failed", requestId, e);
                    metrics.countOutcome("error");
                    return Mono.just(error(
                            new ApiException(
                                    500,
                                    "server_error",
                                    null,
                                    "internal_error",
                                    "the request failed (request " + requestId + "; the conductor's log says why)",
                                    null),
                            requestId));
                });
    }

    /** One prompt of a request run: its generation and each choice's events. */
    private record Ran(GenerationRequest g, Generation gen, List<List<GenerationEvent>> choices) {}

    /**
     * Several choices in one answer: a batch of prompts on /v1/completions, and {@code n} > 1 (chat or
     * completions). Each prompt runs as its own request (scheduled, prefilled and decoded like any
     * other) and its {@code n} choices come from its one prefill, decoded side by side on one decode
     * worker from the prompt's shared KV blocks; choice {@code i * n + c} is prompt {@code i}'s
     * {@code c}-th. The usage counts each prompt once and every choice's tokens; streamed, the
     * choices' chunks interleave as they come, each with its index.
     */
    private Mono<ResponseEntity<?>> several(List<GenerationRequest> gs, String requestId) {
        GenerationRequest first = gs.get(0);
        boolean chat = first.chat();
        String id = (chat ? "chatcmpl-" : "cmpl-") + requestId.replace("-", "");
        long now = System.currentTimeMillis() / 1000;
        if (!first.stream()) {
            return Flux.fromIterable(gs)
                    .flatMapSequential(g -> service.generate(g)
                            .onErrorMap(RequestFailure.class, ApiException::of)
                            .flatMap(gen -> Flux.fromIterable(gen.choices())
                                    .flatMapSequential(c -> c.onErrorMap(RequestFailure.class, ApiException::of)
                                            .collectList())
                                    .collectList()
                                    .map(lists -> new Ran(g, gen, lists))))
                    .collectList()
                    .<ResponseEntity<?>>map(all -> {
                        metrics.countOutcome("ok");
                        List<Map<String, Object>> choices = new ArrayList<>();
                        int prompt = 0, completion = 0, cached = 0;
                        for (int i = 0; i < all.size(); i++) {
                            Ran r = all.get(i);
                            for (int c = 0; c < r.choices().size(); c++) {
                                Answer a = answer(r.g(), r.choices().get(c));
                                choices.add(choice(
                                        r.g(), i * r.g().n() + c, a, r.gen().promptLogprobs()));
                                completion += a.done().completionTokens();
                                if (c > 0) continue;
                                prompt += a.done().promptTokens();
                                cached += a.done().cachedTokens();
                            }
                        }
                        Map<String, Object> m = new LinkedHashMap<>();
                        m.put("id", id);
                        m.put("object", chat ? "chat.completion" : "text_completion");
                        m.put("created", now);
                        m.put("model", first.model());
                        m.put("choices", choices);
                        m.put("usage", usage(new GenerationEvent.Done("stop", prompt, completion, cached)));
                        ResponseEntity.BodyBuilder b = ResponseEntity.ok().header("X-Request-Id", requestId);
                        if (all.size() == 1)
                            b.header(PREFILL_HEADER, all.get(0).gen().prefill())
                                    .header(DECODE_HEADER, all.get(0).gen().decode());
                        return (ResponseEntity<?>) b.body(m);
                    })
                    .onErrorResume(ApiException.class, e -> {
                        metrics.countOutcome(e.status() == 429 ? "rejected" : "error");
                        return Mono.just(error(e, requestId));
                    });
        }
        int[] usage = new int[3];
        Flux<ServerSentEvent<String>> tail = Flux.defer(() -> {
            List<ServerSentEvent<String>> t = new ArrayList<>();
            if (first.includeUsage())
                t.add(sse(json(
                        usageChunk(first, id, now, new GenerationEvent.Done("stop", usage[0], usage[1], usage[2])))));
            t.add(sse("[DONE]"));
            return Flux.fromIterable(t);
        });
        if (gs.size() == 1) { // one prompt, n choices: its refusals are still an HTTP status
            return service.generate(first)
                    .onErrorMap(RequestFailure.class, ApiException::of)
                    .<ResponseEntity<?>>map(gen -> ResponseEntity.ok()
                            .header("X-Request-Id", requestId)
                            .header(PREFILL_HEADER, gen.prefill())
                            .header(DECODE_HEADER, gen.decode())
                            .contentType(MediaType.TEXT_EVENT_STREAM)
                            .body(choiceStreams(first, gen, 0, id, now, usage)
                                    .concatWith(tail)
                                    .doOnComplete(() -> metrics.countOutcome("ok"))
                                    .doOnCancel(() -> metrics.countOutcome("cancelled"))
                                    .onErrorResume(e -> streamFailure(e, requestId))))
                    .onErrorResume(ApiException.class, e -> {
                        metrics.countOutcome(e.status() == 429 ? "rejected" : "error");
                        return Mono.just(error(e, requestId));
                    });
        }
        List<Flux<ServerSentEvent<String>>> parts = new ArrayList<>();
        for (int i = 0; i < gs.size(); i++) {
            GenerationRequest g = gs.get(i);
            int base = i * g.n();
            parts.add(service.generate(g)
                    .onErrorMap(RequestFailure.class, ApiException::of)
                    .flatMapMany(gen -> choiceStreams(g, gen, base, id, now, usage)));
        }
        Flux<ServerSentEvent<String>> sse = Flux.merge(parts)
                .concatWith(tail)
                .doOnComplete(() -> metrics.countOutcome("ok"))
                .onErrorResume(e -> streamFailure(e, requestId));
        return Mono.just(ResponseEntity.ok()
                .header("X-Request-Id", requestId)
                .contentType(MediaType.TEXT_EVENT_STREAM)
                .body(sse));
    }

    /** The chunks of every choice of {@code gen} (indexes from {@code base}), merged; usage summed into it. */
    private Flux<ServerSentEvent<String>> choiceStreams(
            GenerationRequest g, Generation gen, int base, String id, long now, int[] usage) {
        List<Flux<ServerSentEvent<String>>> cs = new ArrayList<>();
        for (int c = 0; c < gen.choices().size(); c++) {
            boolean counted = c == 0; // the prompt once per request
            cs.add(choiceChunks(g, base + c, id, now, events(gen.choices().get(c)), gen.promptLogprobs(), d -> {
                synchronized (usage) {
                    if (counted) {
                        usage[0] += d.promptTokens();
                        usage[2] += d.cachedTokens();
                    }
                    usage[1] += d.completionTokens();
                }
            }));
        }
        return Flux.merge(cs);
    }

    /** A Responses request translated, and the chat request it runs as. */
    private record ResponseTurn(ResponsesApi.Turn turn, GenerationRequest g) {}

    /**
     * OpenAI's Responses API, as a subset (docs/api.md): the request runs as a chat request
     * ({@link ResponsesApi}); the answer comes back as output items, whole or as Responses' streaming
     * events, and the conversation is kept for {@code previous_response_id}.
     */
    @PostMapping(value = "/v1/responses", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Mono<ResponseEntity<?>> responses(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            @RequestHeader(value = Tracing.TRACEPARENT, required = false) String traceparent,
            ServerWebExchange exchange) {
        ApiKeys.Tenant tenant = exchange.getAttribute(ApiKeyFilter.TENANT);
        String requestId = rid != null && rid.matches("[A-Za-z0-9._-]{1,64}")
                ? rid
                : UUID.randomUUID().toString();
        String who = tenant == null ? null : tenant.name();
        Traced span = tracing.serve("mooncakej.request", traceparent)
                .tag("mooncakej.request_id", requestId)
                .tag("mooncakej.endpoint", "/v1/responses");
        return tokenizers
                .submit(who == null ? "-" : who, () -> {
                    ResponsesApi.Turn turn = responses.translate(body, who);
                    GenerationRequest g = parser.parse(
                                    turn.chatBody(), true, requestId, tenant == null ? null : tenant.salt())
                            .traced(span);
                    keys.admitTokens(tenant, (long) g.promptTokens().length + g.maxTokens());
                    return new ResponseTurn(turn, g);
                })
                .flatMap(rt -> respond(rt, requestId, who))
                .transform(m -> refusals(m, requestId))
                .transform(m -> traced(m, span));
    }

    private Mono<ResponseEntity<?>> respond(ResponseTurn rt, String requestId, String who) {
        GenerationRequest g = rt.g();
        String id = "resp_" + requestId.replace("-", "");
        long now = System.currentTimeMillis() / 1000;
        Mono<Generation> started = service.generate(g).onErrorMap(RequestFailure.class, ApiException::of);
        if (g.stream()) {
            return started.map(gen -> {
                ResponseStream st = new ResponseStream(rt, id, now, who);
                Flux<ServerSentEvent<String>> sse = Flux.fromIterable(st.head())
                        .concatWith(events(gen).concatMap(ev -> Flux.fromIterable(st.on(ev))))
                        .doOnComplete(() -> metrics.countOutcome("ok"))
                        .onErrorResume(e -> {
                            metrics.countOutcome("error");
                            if (!(e instanceof ApiException)) LOG.error("[{}] response stream failed", requestId, e);
                            Map<String, Object> ev = new LinkedHashMap<>();
                            ev.put("type", "error");
                            ev.put("sequence_number", st.seq++);
                            ev.put(
                                    "code",
                                    e instanceof ApiException a ? a.body().toString() : "internal_error");
                            ev.put("message", "the request failed (request " + requestId + ")");
                            ev.put("param", null);
                            return Flux.just(ServerSentEvent.builder(json(ev))
                                    .event("error")
                                    .build());
                        });
                return (ResponseEntity<?>) ResponseEntity.ok()
                        .header("X-Request-Id", requestId)
                        .header(PREFILL_HEADER, gen.prefill())
                        .header(DECODE_HEADER, gen.decode())
                        .contentType(MediaType.TEXT_EVENT_STREAM)
                        .body(sse);
            });
        }
        return started.flatMap(gen -> events(gen).collectList().map(list -> {
            metrics.countOutcome("ok");
            Answer a = answer(g, list);
            List<Map<String, Object>> output = new ArrayList<>();
            if (a.content() != null && !a.content().isEmpty())
                output.add(messageItem("msg_" + id.substring(5), a.content(), "completed"));
            for (Map<String, Object> call : a.toolCalls()) {
                @SuppressWarnings("unchecked")
                Map<String, Object> fn = (Map<String, Object>) call.get("function");
                output.add(callItem(
                        (String) call.get("id"), (String) fn.get("name"), (String) fn.get("arguments"), "completed"));
            }
            responses.remember(id, who, rt.turn(), chatAnswer(a.content(), a.toolCalls()));
            return (ResponseEntity<?>) ResponseEntity.ok()
                    .header("X-Request-Id", requestId)
                    .header(PREFILL_HEADER, gen.prefill())
                    .header(DECODE_HEADER, gen.decode())
                    .body(responseObject(id, now, rt, output, a.done(), a.finish()));
        }));
    }

    /** The answer as the chat message the next turn's conversation holds. */
    private static Map<String, Object> chatAnswer(String content, List<Map<String, Object>> toolCalls) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", "assistant");
        m.put("content", content);
        if (!toolCalls.isEmpty()) m.put("tool_calls", toolCalls);
        return m;
    }

    private static Map<String, Object> messageItem(String itemId, String text, String status) {
        Map<String, Object> part = new LinkedHashMap<>();
        part.put("type", "output_text");
        part.put("text", text);
        part.put("annotations", List.of());
        part.put("logprobs", List.of());
        Map<String, Object> item = new LinkedHashMap<>();
        item.put("type", "message");
        item.put("id", itemId);
        item.put("status", status);
        item.put("role", "assistant");
        item.put("content", text == null ? List.of() : List.of(part));
        return item;
    }

    private static Map<String, Object> callItem(String callId, String name, String arguments, String status) {
        Map<String, Object> item = new LinkedHashMap<>();
        item.put("type", "function_call");
        item.put("id", "fc_" + callId.substring(callId.indexOf('_') + 1));
        item.put("call_id", callId);
        item.put("name", name);
        item.put("arguments", arguments);
        item.put("status", status);
        return item;
    }

    /** The Response object, with every field OpenAI's has (those this server does not use at their neutral values). */
    private Map<String, Object> responseObject(
            String id,
            long now,
            ResponseTurn rt,
            List<Map<String, Object>> output,
            GenerationEvent.Done done,
            String finish) {
        JsonNode req = rt.turn().request();
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("id", id);
        r.put("object", "response");
        r.put("created_at", now);
        boolean incomplete = "length".equals(finish);
        r.put("status", done == null ? "in_progress" : incomplete ? "incomplete" : "completed");
        r.put("error", null);
        r.put("incomplete_details", incomplete ? Map.of("reason", "max_output_tokens") : null);
        r.put(
                "instructions",
                req.path("instructions").isString() ? req.get("instructions").asString() : null);
        r.put("max_output_tokens", rt.g().maxTokens());
        r.put("model", rt.g().model());
        r.put("output", output);
        r.put(
                "parallel_tool_calls",
                !req.has("parallel_tool_calls")
                        || req.get("parallel_tool_calls").asBoolean(true));
        r.put(
                "previous_response_id",
                req.path("previous_response_id").isString()
                        ? req.get("previous_response_id").asString()
                        : null);
        Map<String, Object> reasoning = new LinkedHashMap<>();
        reasoning.put("effort", null);
        reasoning.put("summary", null);
        r.put("reasoning", reasoning);
        r.put("store", rt.turn().store());
        r.put("temperature", rt.g().sampling().temperature());
        r.put("text", req.path("text").isObject() ? req.get("text") : Map.of("format", Map.of("type", "text")));
        r.put(
                "tool_choice",
                req.has("tool_choice") && !req.get("tool_choice").isNull() ? req.get("tool_choice") : "auto");
        r.put("tools", req.has("tools") && !req.get("tools").isNull() ? req.get("tools") : List.of());
        r.put("top_p", rt.g().sampling().topP());
        r.put("truncation", "disabled");
        r.put("user", req.path("user").isString() ? req.get("user").asString() : null);
        r.put("metadata", req.path("metadata").isObject() ? req.get("metadata") : Map.of());
        if (done != null) {
            Map<String, Object> u = new LinkedHashMap<>();
            u.put("input_tokens", done.promptTokens());
            u.put("input_tokens_details", Map.of("cached_tokens", done.cachedTokens()));
            u.put("output_tokens", done.completionTokens());
            u.put("output_tokens_details", Map.of("reasoning_tokens", 0));
            u.put("total_tokens", done.promptTokens() + done.completionTokens());
            r.put("usage", u);
        } else r.put("usage", null);
        return r;
    }

    /**
     * One streamed Response: the events OpenAI sends ({@code response.created}, an output item added
     * per message or call, text and argument deltas, each item done, {@code response.completed}), each
     * numbered.
     */
    private final class ResponseStream {
        final ResponseTurn rt;
        final String id;
        final long now;
        final String who;
        final ToolCallStream calls;
        int seq;
        final List<Map<String, Object>> items = new ArrayList<>();
        final List<StringBuilder> texts = new ArrayList<>(); // per item: its text or arguments
        int messageAt = -1;
        final Map<Integer, Integer> callAt = new LinkedHashMap<>();

        ResponseStream(ResponseTurn rt, String id, long now, String who) {
            this.rt = rt;
            this.id = id;
            this.now = now;
            this.who = who;
            this.calls = rt.g().tools() == null ? null : rt.g().tools().stream();
        }

        ServerSentEvent<String> event(String type, Map<String, Object> fields) {
            Map<String, Object> ev = new LinkedHashMap<>();
            ev.put("type", type);
            ev.put("sequence_number", seq++);
            ev.putAll(fields);
            return ServerSentEvent.builder(json(ev)).event(type).build();
        }

        List<ServerSentEvent<String>> head() {
            Map<String, Object> r = responseObject(id, now, rt, List.of(), null, null);
            return List.of(
                    event("response.created", Map.of("response", r)),
                    event("response.in_progress", Map.of("response", r)));
        }

        List<ServerSentEvent<String>> on(GenerationEvent ev) {
            List<ServerSentEvent<String>> out = new ArrayList<>();
            if (ev instanceof GenerationEvent.Delta d) {
                List<ToolCallStream.Out> outs =
                        calls == null ? List.of(new ToolCallStream.Text(d.text())) : calls.feed(d.text());
                for (ToolCallStream.Out o : outs) released(o, out);
                return out;
            }
            GenerationEvent.Done done = (GenerationEvent.Done) ev;
            if (calls != null) for (ToolCallStream.Out o : calls.finish()) released(o, out);
            List<Map<String, Object>> finished = new ArrayList<>();
            List<Map<String, Object>> toolCalls = new ArrayList<>();
            String content = null;
            for (int i = 0; i < items.size(); i++) {
                Map<String, Object> item = items.get(i);
                String text = texts.get(i).toString();
                Map<String, Object> closed;
                if (i == messageAt) {
                    content = text;
                    closed = messageItem((String) item.get("id"), text, "completed");
                    @SuppressWarnings("unchecked")
                    Map<String, Object> part = ((List<Map<String, Object>>) closed.get("content")).get(0);
                    out.add(event(
                            "response.output_text.done",
                            Map.of(
                                    "item_id",
                                    item.get("id"),
                                    "output_index",
                                    i,
                                    "content_index",
                                    0,
                                    "text",
                                    text,
                                    "logprobs",
                                    List.of())));
                    out.add(event(
                            "response.content_part.done",
                            Map.of("item_id", item.get("id"), "output_index", i, "content_index", 0, "part", part)));
                } else {
                    closed = callItem((String) item.get("call_id"), (String) item.get("name"), text, "completed");
                    out.add(event(
                            "response.function_call_arguments.done",
                            Map.of(
                                    "item_id",
                                    item.get("id"),
                                    "output_index",
                                    i,
                                    "name",
                                    item.get("name"),
                                    "arguments",
                                    text)));
                    Map<String, Object> fn = new LinkedHashMap<>();
                    fn.put("name", item.get("name"));
                    fn.put("arguments", text);
                    Map<String, Object> call = new LinkedHashMap<>();
                    call.put("id", item.get("call_id"));
                    call.put("type", "function");
                    call.put("function", fn);
                    toolCalls.add(call);
                }
                out.add(event("response.output_item.done", Map.of("output_index", i, "item", closed)));
                finished.add(closed);
            }
            String finish = done.finishReason();
            if (!toolCalls.isEmpty() && finish.equals("stop")) finish = "tool_calls";
            Map<String, Object> r = responseObject(id, now, rt, finished, done, finish);
            out.add(event(
                    "length".equals(finish) ? "response.incomplete" : "response.completed", Map.of("response", r)));
            responses.remember(id, who, rt.turn(), chatAnswer(content, toolCalls));
            return out;
        }

        private void released(ToolCallStream.Out o, List<ServerSentEvent<String>> out) {
            switch (o) {
                case ToolCallStream.Text t -> {
                    if (t.text().isEmpty()) return;
                    if (messageAt < 0) {
                        messageAt = items.size();
                        Map<String, Object> item = messageItem("msg_" + id.substring(5), null, "in_progress");
                        items.add(item);
                        texts.add(new StringBuilder());
                        out.add(event("response.output_item.added", Map.of("output_index", messageAt, "item", item)));
                        Map<String, Object> part = new LinkedHashMap<>();
                        part.put("type", "output_text");
                        part.put("text", "");
                        part.put("annotations", List.of());
                        part.put("logprobs", List.of());
                        out.add(event(
                                "response.content_part.added",
                                Map.of(
                                        "item_id",
                                        item.get("id"),
                                        "output_index",
                                        messageAt,
                                        "content_index",
                                        0,
                                        "part",
                                        part)));
                    }
                    texts.get(messageAt).append(t.text());
                    out.add(event(
                            "response.output_text.delta",
                            Map.of(
                                    "item_id",
                                    items.get(messageAt).get("id"),
                                    "output_index",
                                    messageAt,
                                    "content_index",
                                    0,
                                    "delta",
                                    t.text(),
                                    "logprobs",
                                    List.of())));
                }
                case ToolCallStream.Start st -> {
                    int at = items.size();
                    callAt.put(st.index(), at);
                    Map<String, Object> item = callItem(st.id(), st.name(), "", "in_progress");
                    items.add(item);
                    texts.add(new StringBuilder());
                    out.add(event("response.output_item.added", Map.of("output_index", at, "item", item)));
                }
                case ToolCallStream.Args a -> {
                    int at = callAt.get(a.index());
                    texts.get(at).append(a.fragment());
                    out.add(event(
                            "response.function_call_arguments.delta",
                            Map.of("item_id", items.get(at).get("id"), "output_index", at, "delta", a.fragment())));
                }
            }
        }
    }

    /** A generation's events, its failures rendered for the client. */
    private static Flux<GenerationEvent> events(Generation gen) {
        return events(gen.events());
    }

    /** One choice's events, its failures rendered for the client. */
    private static Flux<GenerationEvent> events(Flux<GenerationEvent> choice) {
        return choice.onErrorMap(RequestFailure.class, ApiException::of);
    }

    /** One choice's stream, then the usage chunk (when asked) and {@code [DONE]}. */
    private Flux<ServerSentEvent<String>> streamChunks(
            GenerationRequest g, String id, long now, Flux<GenerationEvent> events, float[] promptLogprobs) {
        GenerationEvent.Done[] last = new GenerationEvent.Done[1];
        return choiceChunks(g, 0, id, now, events, promptLogprobs, d -> last[0] = d)
                .concatWith(Flux.defer(() -> {
                    List<ServerSentEvent<String>> tail = new ArrayList<>();
                    if (g.includeUsage() && last[0] != null) tail.add(sse(json(usageChunk(g, id, now, last[0]))));
                    tail.add(sse("[DONE]"));
                    return Flux.fromIterable(tail);
                }));
    }

    /**
     * The chunks of choice {@code index}: the head (chat's role; completions' echo, with the prompt's
     * log-probabilities when asked), its deltas, and its finish chunk; its end is handed to {@code ended}.
     */
    private Flux<ServerSentEvent<String>> choiceChunks(
            GenerationRequest g,
            int index,
            String id,
            long now,
            Flux<GenerationEvent> events,
            float[] promptLogprobs,
            Consumer<GenerationEvent.Done> ended) {
        List<ServerSentEvent<String>> head = new ArrayList<>();
        if (g.chat())
            head.add(sse(json(chunk(g, index, id, now, Map.of("role", "assistant", "content", ""), null, null))));
        if (g.echo() != null)
            head.add(sse(json(textChunk(
                    g,
                    index,
                    id,
                    now,
                    g.echo(),
                    null,
                    promptLogprobs == null ? null : promptLogprobs(g, promptLogprobs)))));
        ToolCallStream calls = g.tools() == null ? null : g.tools().stream();
        if (calls != null)
            return Flux.fromIterable(head).concatWith(toolChunks(g, index, id, now, events, calls, ended));
        Flux<ServerSentEvent<String>> body = events.concatMap(ev -> switch (ev) {
            case GenerationEvent.Delta d ->
                d.text().isEmpty() && !g.sampling().logprobs()
                        ? Flux.empty()
                        : Flux.just(sse(json(
                                g.chat()
                                        ? chunk(
                                                g,
                                                index,
                                                id,
                                                now,
                                                Map.of("content", d.text()),
                                                null,
                                                logprobs(g, List.of(d)))
                                        : textChunk(g, index, id, now, d.text(), null, logprobs(g, List.of(d))))));
            case GenerationEvent.Done done -> {
                ended.accept(done);
                yield Flux.just(sse(json(
                        g.chat()
                                ? chunk(g, index, id, now, Map.of(), done.finishReason(), null)
                                : textChunk(g, index, id, now, "", done.finishReason(), null))));
            }
        });
        return Flux.fromIterable(head).concatWith(body);
    }

    /**
     * A chat stream whose answer is parsed for tool calls: content deltas as before, each call as
     * OpenAI streams it (a delta with its index, id, type and name, then deltas of argument fragments),
     * and {@code finish_reason: tool_calls} when the answer called. A token's log-probability rides on
     * the next chunk released (text held back while it may start a call releases later).
     */
    private Flux<ServerSentEvent<String>> toolChunks(
            GenerationRequest g,
            int index,
            String id,
            long now,
            Flux<GenerationEvent> events,
            ToolCallStream calls,
            Consumer<GenerationEvent.Done> ended) {
        List<GenerationEvent.Delta> pending = new ArrayList<>();
        return events.concatMap(ev -> {
            List<ServerSentEvent<String>> out = new ArrayList<>();
            List<ToolCallStream.Out> released;
            String finish = null;
            GenerationEvent.Done done = null;
            if (ev instanceof GenerationEvent.Delta d) {
                if (d.token() >= 0) pending.add(d);
                released = calls.feed(d.text());
            } else {
                done = (GenerationEvent.Done) ev;
                released = calls.finish();
                finish = calls.calls() > 0 && done.finishReason().equals("stop") ? "tool_calls" : done.finishReason();
            }
            for (ToolCallStream.Out o : released) {
                Object lp = pending.isEmpty() ? null : logprobs(g, List.copyOf(pending));
                pending.clear();
                out.add(sse(json(chunk(g, index, id, now, toolDelta(o), null, lp))));
            }
            if (done != null) {
                ended.accept(done);
                out.add(sse(json(chunk(g, index, id, now, Map.of(), finish, null))));
            }
            return Flux.fromIterable(out);
        });
    }

    private static Map<String, Object> toolDelta(ToolCallStream.Out o) {
        return switch (o) {
            case ToolCallStream.Text t -> Map.of("content", t.text());
            case ToolCallStream.Start st -> {
                Map<String, Object> call = new LinkedHashMap<>();
                call.put("index", st.index());
                call.put("id", st.id());
                call.put("type", "function");
                call.put("function", Map.of("name", st.name(), "arguments", ""));
                yield Map.of("tool_calls", List.of(call));
            }
            case ToolCallStream.Args a ->
                Map.of(
                        "tool_calls",
                        List.of(Map.of("index", a.index(), "function", Map.of("arguments", a.fragment()))));
        };
    }

    private Map<String, Object> usageChunk(GenerationRequest g, String id, long now, GenerationEvent.Done done) {
        Map<String, Object> u = new LinkedHashMap<>();
        u.put("id", id);
        u.put("object", g.chat() ? "chat.completion.chunk" : "text_completion");
        u.put("created", now);
        u.put("model", g.model());
        u.put("choices", List.of());
        u.put("usage", usage(done));
        return u;
    }

    private Map<String, Object> chunk(
            GenerationRequest g,
            int index,
            String id,
            long now,
            Map<String, Object> delta,
            String finish,
            Object logprobs) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("index", index);
        choice.put("delta", delta);
        choice.put("logprobs", logprobs);
        choice.put("finish_reason", finish);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("object", "chat.completion.chunk");
        m.put("created", now);
        m.put("model", g.model());
        m.put("choices", List.of(choice));
        return m;
    }

    private Map<String, Object> textChunk(
            GenerationRequest g, int index, String id, long now, String text, String finish, Object logprobs) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("text", text);
        choice.put("index", index);
        choice.put("logprobs", logprobs);
        choice.put("finish_reason", finish);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("object", "text_completion");
        m.put("created", now);
        m.put("model", g.model());
        m.put("choices", List.of(choice));
        return m;
    }

    /**
     * A finished answer: its text, the content and tool calls parsed out of it (as the stream parses
     * them), the token deltas (for logprobs), the end, and the finish reason clients see.
     */
    record Answer(
            String text,
            String content,
            List<Map<String, Object>> toolCalls,
            List<GenerationEvent.Delta> deltas,
            GenerationEvent.Done done,
            String finish) {}

    private static Answer answer(GenerationRequest g, List<GenerationEvent> events) {
        StringBuilder text = new StringBuilder();
        List<GenerationEvent.Delta> deltas = new ArrayList<>();
        GenerationEvent.Done done = null;
        for (GenerationEvent e : events) {
            if (e instanceof GenerationEvent.Delta d) {
                text.append(d.text());
                if (d.token() >= 0) deltas.add(d);
            } else if (e instanceof GenerationEvent.Done d) {
                done = d;
            }
        }
        if (done == null) done = new GenerationEvent.Done("stop", g.promptTokens().length, deltas.size(), 0);
        String finish = done.finishReason();
        String content = text.toString();
        List<Map<String, Object>> toolCalls = new ArrayList<>();
        ToolCallStream calls = g.tools() == null ? null : g.tools().stream();
        if (calls != null) { // the answer parsed as the stream parses it: content, then the calls
            List<ToolCallStream.Out> outs = new ArrayList<>(calls.feed(text.toString()));
            outs.addAll(calls.finish());
            StringBuilder c = new StringBuilder();
            List<StringBuilder> args = new ArrayList<>();
            for (ToolCallStream.Out o : outs) {
                switch (o) {
                    case ToolCallStream.Text t -> c.append(t.text());
                    case ToolCallStream.Start st -> {
                        Map<String, Object> fn = new LinkedHashMap<>();
                        fn.put("name", st.name());
                        Map<String, Object> call = new LinkedHashMap<>();
                        call.put("id", st.id());
                        call.put("type", "function");
                        call.put("function", fn);
                        toolCalls.add(call);
                        args.add(new StringBuilder());
                    }
                    case ToolCallStream.Args x -> args.get(x.index()).append(x.fragment());
                }
            }
            for (int i = 0; i < toolCalls.size(); i++) {
                @SuppressWarnings("unchecked")
                Map<String, Object> fn = (Map<String, Object>) toolCalls.get(i).get("function");
                fn.put("arguments", args.get(i).toString());
            }
            content = toolCalls.isEmpty() || !c.toString().isBlank() ? c.toString() : null;
            if (!toolCalls.isEmpty() && finish.equals("stop")) finish = "tool_calls";
        }
        return new Answer(text.toString(), content, toolCalls, deltas, done, finish);
    }

    private Map<String, Object> full(
            GenerationRequest g, String id, long now, List<GenerationEvent> events, float[] promptLogprobs) {
        Answer a = answer(g, events);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("object", g.chat() ? "chat.completion" : "text_completion");
        m.put("created", now);
        m.put("model", g.model());
        m.put("choices", List.of(choice(g, 0, a, promptLogprobs)));
        m.put("usage", usage(a.done()));
        return m;
    }

    /** Choice {@code index} of a finished answer (with completions' echo, the prompt first). */
    private Map<String, Object> choice(GenerationRequest g, int index, Answer a, float[] promptLogprobs) {
        Map<String, Object> choice = new LinkedHashMap<>();
        if (g.chat()) {
            choice.put("index", index);
            Map<String, Object> message = new LinkedHashMap<>();
            message.put("role", "assistant");
            message.put("content", a.content());
            message.put("refusal", null);
            if (!a.toolCalls().isEmpty()) message.put("tool_calls", a.toolCalls());
            choice.put("message", message);
        } else {
            choice.put("text", g.echo() == null ? a.text() : g.echo() + a.text());
            choice.put("index", index);
        }
        Object lp = logprobs(g, a.deltas());
        if (promptLogprobs != null && lp != null) { // completions: the prompt's tokens, then the answer's
            Map<String, List<Object>> both = promptLogprobs(g, promptLogprobs);
            @SuppressWarnings("unchecked")
            Map<String, List<?>> answer = (Map<String, List<?>>) lp;
            both.get("tokens").addAll(answer.get("tokens"));
            both.get("token_logprobs").addAll(answer.get("token_logprobs"));
            lp = both;
        }
        choice.put("logprobs", lp);
        choice.put("finish_reason", a.finish());
        return choice;
    }

    /**
     * The prompt's tokens and their log-probabilities in completions' form; the first token has none
     * (null), as nothing came before it.
     */
    private Map<String, List<Object>> promptLogprobs(GenerationRequest g, float[] lps) {
        List<Object> tokens = new ArrayList<>(), values = new ArrayList<>();
        int[] prompt = g.promptTokens();
        for (int i = 0; i < prompt.length; i++) {
            tokens.add(new String(model.tokenizer().tokenBytes(prompt[i]), StandardCharsets.UTF_8));
            values.add(i == 0 ? null : lps[i - 1]);
        }
        Map<String, List<Object>> m = new LinkedHashMap<>();
        m.put("tokens", tokens);
        m.put("token_logprobs", values);
        return m;
    }

    private Object logprobs(GenerationRequest g, List<GenerationEvent.Delta> deltas) {
        if (!g.sampling().logprobs()) return null;
        List<Map<String, Object>> content = new ArrayList<>();
        List<String> tokens = new ArrayList<>();
        List<Float> lps = new ArrayList<>();
        for (GenerationEvent.Delta d : deltas) {
            if (d.token() < 0) continue;
            byte[] b = model.tokenizer().tokenBytes(d.token());
            String tok = new String(b, StandardCharsets.UTF_8);
            List<Integer> bytes = new ArrayList<>();
            for (byte x : b) bytes.add(x & 0xFF);
            Map<String, Object> c = new LinkedHashMap<>();
            c.put("token", tok);
            c.put("logprob", d.logprob());
            c.put("bytes", bytes);
            c.put("top_logprobs", List.of());
            content.add(c);
            tokens.add(tok);
            lps.add(d.logprob());
        }
        if (g.chat()) return Map.of("content", content);
        return Map.of("tokens", tokens, "token_logprobs", lps);
    }

    private static Map<String, Object> usage(GenerationEvent.Done d) {
        Map<String, Object> u = new LinkedHashMap<>();
        u.put("prompt_tokens", d.promptTokens());
        u.put("completion_tokens", d.completionTokens());
        u.put("total_tokens", d.promptTokens() + d.completionTokens());
        u.put("prompt_tokens_details", Map.of("cached_tokens", d.cachedTokens()));
        return u;
    }

    private static ServerSentEvent<String> sse(String data) {
        return ServerSentEvent.builder(data).build();
    }

    private static String json(Object o) {
        return JSON.writeValueAsString(o);
    }

    private static ResponseEntity<?> error(ApiException e, String requestId) {
        ResponseEntity.BodyBuilder b = ResponseEntity.status(e.status())
                .header("X-Request-Id", requestId)
                .contentType(MediaType.APPLICATION_JSON);
        if (e.retryAfterSeconds() != null) b.header(HttpHeaders.RETRY_AFTER, String.valueOf(e.retryAfterSeconds()));
        return b.body(e.body());
    }

    @ExceptionHandler(Exception.class)
    public ResponseEntity<?> unexpected(Exception e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof ApiException a) return error(a, "-"); // e.g. the body limit, met while reading it
            if (t instanceof DataBufferLimitException)
                return error(BodyLimitFilter.tooLarge(-1, props.maxBodyBytes()), "-");
        }
        LOG.error("unexpected error", e);
        return error(
                new ApiException(
                        500,
                        "server_error",
                        null,
                        "internal_error",
                        "the request failed; the conductor's log says why",
                        null),
                "-");
    }
}
