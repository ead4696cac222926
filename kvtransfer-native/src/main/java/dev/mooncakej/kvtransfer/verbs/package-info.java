/**
 * Thin Panama FFM bindings to libibverbs: hand-written layouts checked against verbs.h, one method handle per
 * symbol, the ops-table dispatch of the inline verbs.
 */
package dev.mooncakej.kvtransfer.verbs;
