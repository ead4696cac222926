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
import jakarta.annotation.PreDestroy;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.RejectedExecutionException;
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

    public OpenAiController(
            ServedModel model,
            RequestParser parser,
            RequestPath service,
            ConductorMetrics metrics,
            ApiKeys keys,
            ConductorProperties props) {
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
            ServerWebExchange exchange) {
        return complete(body, true, rid, exchange.getAttribute(ApiKeyFilter.TENANT));
    }

    @PostMapping(value = "/v1/completions", consumes = MediaType.APPLICATION_JSON_VALUE)
    public Mono<ResponseEntity<?>> completions(
            @RequestBody(required = false) String body,
            @RequestHeader(value = "X-Request-Id", required = false) String rid,
            ServerWebExchange exchange) {
        return complete(body, false, rid, exchange.getAttribute(ApiKeyFilter.TENANT));
    }

    /**
     * A request that passed the cheap checks from its headers ({@link ApiKeyFilter}: the key, its
     * concurrency and request-rate limits, released when the exchange ends; {@link BodyLimitFilter}):
     * parsed, checked for the model, bounded by context from its size, tokenized on the fair pool,
     * charged to its key's token rate, then run.
     */
    private Mono<ResponseEntity<?>> complete(String body, boolean chat, String rid, ApiKeys.Tenant tenant) {
        String requestId = rid != null && rid.matches("[A-Za-z0-9._-]{1,64}")
                ? rid
                : UUID.randomUUID().toString();
        // templates and tokenization off the event loop, on a bounded pool shared fairly between keys: a
        // burst of long prompts queues there (or is refused with 503 when the queue is full) instead of
        // stalling every stream or another key's requests
        return tokenizers
                .submit(tenant == null ? "-" : tenant.name(), () -> {
                    GenerationRequest g = parser.parse(body, chat, requestId, tenant == null ? null : tenant.salt());
                    keys.admitTokens(tenant, (long) g.promptTokens().length + g.maxTokens());
                    return g;
                })
                .flatMap(g -> generate(g, chat, requestId))
                .onErrorResume(ApiException.class, e -> {
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
                Flux<ServerSentEvent<String>> sse = streamChunks(g, id, now, events(gen))
                        .doOnComplete(() -> metrics.countOutcome("ok"))
                        .doOnCancel(() -> metrics.countOutcome("cancelled"))
                        .onErrorResume(e -> {
                            metrics.countOutcome("error");
                            if (!(e instanceof ApiException)) LOG.error("[{}] stream failed", requestId, e);
                            ApiException api = e instanceof ApiException a
                                    ? a
                                    : new ApiException(
                                            500,
                                            "server_error",
                                            null,
                                            "internal_error",
                                            "the request failed (request " + requestId
                                                    + "; the conductor's log says why)",
                                            null);
                            return Flux.just(sse(json(api.body())), sse("[DONE]"));
                        });
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
                        .body(full(g, id, now, list));
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

    /** A generation's events, its failures rendered for the client. */
    private static Flux<GenerationEvent> events(Generation gen) {
        return gen.events().onErrorMap(RequestFailure.class, ApiException::of);
    }

    private Flux<ServerSentEvent<String>> streamChunks(
            GenerationRequest g, String id, long now, Flux<GenerationEvent> events) {
        List<ServerSentEvent<String>> head = new ArrayList<>();
        if (g.chat()) head.add(sse(json(chunk(g, id, now, Map.of("role", "assistant", "content", ""), null, null))));
        ToolCallStream calls = g.tools() == null ? null : g.tools().stream();
        if (calls != null) return Flux.fromIterable(head).concatWith(toolChunks(g, id, now, events, calls));
        Flux<ServerSentEvent<String>> body = events.concatMap(ev -> switch (ev) {
            case GenerationEvent.Delta d ->
                d.text().isEmpty() && !g.sampling().logprobs()
                        ? Flux.empty()
                        : Flux.just(sse(json(
                                g.chat()
                                        ? chunk(g, id, now, Map.of("content", d.text()), null, logprobs(g, List.of(d)))
                                        : textChunk(g, id, now, d.text(), null, logprobs(g, List.of(d))))));
            case GenerationEvent.Done done -> {
                List<ServerSentEvent<String>> tail = new ArrayList<>();
                tail.add(sse(json(
                        g.chat()
                                ? chunk(g, id, now, Map.of(), done.finishReason(), null)
                                : textChunk(g, id, now, "", done.finishReason(), null))));
                if (g.includeUsage()) tail.add(sse(json(usageChunk(g, id, now, done))));
                tail.add(sse("[DONE]"));
                yield Flux.fromIterable(tail);
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
            GenerationRequest g, String id, long now, Flux<GenerationEvent> events, ToolCallStream calls) {
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
                out.add(sse(json(chunk(g, id, now, toolDelta(o), null, lp))));
            }
            if (done != null) {
                out.add(sse(json(chunk(g, id, now, Map.of(), finish, null))));
                if (g.includeUsage()) out.add(sse(json(usageChunk(g, id, now, done))));
                out.add(sse("[DONE]"));
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
            GenerationRequest g, String id, long now, Map<String, Object> delta, String finish, Object logprobs) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("index", 0);
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
            GenerationRequest g, String id, long now, String text, String finish, Object logprobs) {
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("text", text);
        choice.put("index", 0);
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

    private Map<String, Object> full(GenerationRequest g, String id, long now, List<GenerationEvent> events) {
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
        Map<String, Object> choice = new LinkedHashMap<>();
        choice.put("index", 0);
        String finish = done.finishReason();
        if (g.chat()) {
            Map<String, Object> message = new LinkedHashMap<>();
            message.put("role", "assistant");
            message.put("content", text.toString());
            message.put("refusal", null);
            ToolCallStream calls = g.tools() == null ? null : g.tools().stream();
            if (calls != null) { // the answer parsed as the stream parses it: content, then the calls
                List<ToolCallStream.Out> outs = new ArrayList<>(calls.feed(text.toString()));
                outs.addAll(calls.finish());
                StringBuilder content = new StringBuilder();
                List<Map<String, Object>> toolCalls = new ArrayList<>();
                List<StringBuilder> args = new ArrayList<>();
                for (ToolCallStream.Out o : outs) {
                    switch (o) {
                        case ToolCallStream.Text t -> content.append(t.text());
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
                        case ToolCallStream.Args a -> args.get(a.index()).append(a.fragment());
                    }
                }
                for (int i = 0; i < toolCalls.size(); i++) {
                    @SuppressWarnings("unchecked")
                    Map<String, Object> fn =
                            (Map<String, Object>) toolCalls.get(i).get("function");
                    fn.put("arguments", args.get(i).toString());
                }
                message.put(
                        "content", toolCalls.isEmpty() || !content.toString().isBlank() ? content.toString() : null);
                if (!toolCalls.isEmpty()) {
                    message.put("tool_calls", toolCalls);
                    if (finish.equals("stop")) finish = "tool_calls";
                }
            }
            choice.put("message", message);
        } else choice.put("text", text.toString());
        choice.put("logprobs", logprobs(g, deltas));
        choice.put("finish_reason", finish);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", id);
        m.put("object", g.chat() ? "chat.completion" : "text_completion");
        m.put("created", now);
        m.put("model", g.model());
        m.put("choices", List.of(choice));
        m.put("usage", usage(done));
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
