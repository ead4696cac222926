package dev.mooncakej.kvtransfer;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * Streams KV layers to one receiver on its own virtual thread, so the prefill computes the next layer
 * while this one is on the wire. {@link #finish} waits for everything queued, commits, and returns the
 * receiver's status. Frames go out in the order they were queued, so a block layer sent twice (a
 * partially filled block completed by the next chunk) ends with its final content.
 */
public final class AsyncKvStream implements AutoCloseable {
    private record Item(int block, int layer, MemorySegment data) {}

    private static final Item END = new Item(-1, -1, null);

    private final TcpKvSender sender;
    private final long requestId;
    private final LinkedBlockingQueue<Item> queue = new LinkedBlockingQueue<>();
    private final Thread thread;
    private volatile IOException failure;

    public AsyncKvStream(TcpKvSender sender, long requestId) {
        this.sender = sender;
        this.requestId = requestId;
        this.thread = Thread.ofVirtual().name("kv-send-" + requestId).start(this::run);
    }

    public void enqueue(int blockIndex, int layer, MemorySegment data) {
        if (failure != null) return;
        queue.add(new Item(blockIndex, layer, data));
    }

    private void run() {
        try {
            while (true) {
                Item it = queue.take();
                if (it == END) return;
                if (failure == null) sender.send(requestId, it.block(), it.layer(), it.data());
            }
        } catch (IOException e) {
            failure = e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Waits for queued frames, then commits {@code tokens}; throws if sending failed or timed out. */
    public byte finish(long tokens, long timeoutMillis) throws IOException, InterruptedException {
        queue.add(END);
        thread.join(timeoutMillis);
        if (thread.isAlive()) {
            thread.interrupt();
            throw new IOException("KV transfer of request " + requestId + " did not finish within " + timeoutMillis + " ms");
        }
        if (failure != null) throw failure;
        return sender.commit(requestId, tokens);
    }

    public long bytesSent() { return sender.bytesSent(); }

    @Override
    public void close() {
        thread.interrupt();
        sender.close();
    }

}
