/**
 * Block keys: chained XXH3 prefix hashes over full blocks of tokens (docs/hashing.md has the specification and
 * test vectors).
 */
package dev.mooncakej.kvcache;
