/**
 * Tool calling, in plain Java: what a chat request offers ({@link dev.mooncakej.conductor.tools.ToolSet}:
 * the functions, {@code tool_choice}, the constraint {@code required} and a named function decode
 * under) and how a model writes its calls ({@link dev.mooncakej.conductor.tools.ToolCallFormat}: Hermes
 * and Qwen {@code <tool_call>} JSON, Llama 3.x JSON, Mistral {@code [TOOL_CALLS]}), parsed out of the
 * generated text as it streams ({@link dev.mooncakej.conductor.tools.ToolCallStream}) into OpenAI's
 * {@code tool_calls}: id and name first, then argument fragments.
 */
package dev.mooncakej.conductor.tools;
