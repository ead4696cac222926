/**
 * The tcp transport: slices striped over authenticated connections ({@link
 * dev.mooncakej.kvtransfer.tcp.TcpTransport}), the server that takes them and the engine's control
 * messages ({@link dev.mooncakej.kvtransfer.tcp.TransferServer}), and their wire format ({@link
 * dev.mooncakej.kvtransfer.tcp.Wire}).
 */
package dev.mooncakej.kvtransfer.tcp;
