package dev.mooncakej.kvtransfer.engine;

/**
 * One request of a batch: READ copies remote to local, WRITE local to remote.
 *
 * @param localOffset   offset in this process's segment
 * @param target        the remote segment's name
 * @param targetOffset  offset in the remote segment's address space
 */
public record TransferRequest(Opcode opcode, long localOffset, String target, long targetOffset, long length) {
    public enum Opcode {
        READ,
        WRITE
    }
}
