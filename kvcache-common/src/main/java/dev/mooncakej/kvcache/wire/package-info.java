/**
 * The messages between services, each one record with one codec both sides use: the JSON messages of the
 * internal HTTP API and the KV control messages of the transfer control channel.
 */
package dev.mooncakej.kvcache.wire;
