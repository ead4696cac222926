/**
 * The peers' shared-secret challenge, used before any byte of the transfer engine moves.
 */
package dev.mooncakej.kvtransfer;
