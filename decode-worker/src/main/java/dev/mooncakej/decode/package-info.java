/**
 * The decode worker (Spring Boot): reservations of KV blocks that prefill workers fill, the fence that keeps a
 * dropped reservation's blocks from any other request until its writer stopped, and the continuous-batching
 * agent.
 */
package dev.mooncakej.decode;
