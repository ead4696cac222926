/**
 * The request path: schedule, reserve KV on a decode worker, prefill, relay the decode stream, and release the
 * reservation however the request ends.
 */
package dev.mooncakej.conductor.request;
