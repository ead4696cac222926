package dev.mooncakej.engine.spi;

/**
 * What a worker and the conductor need to know of a loaded model.
 *
 * @param id              model identity (name and a digest of the file), seeds the block-key hash
 * @param blockTokens     tokens per KV block
 * @param kvLayerBytes    bytes of one layer of one KV block (the unit of layer-wise transfer)
 */
public record ModelInfo(
        String id,
        String name,
        String architecture,
        int vocabSize,
        int contextLength,
        int layers,
        int blockTokens,
        long kvLayerBytes,
        int kvBlocks) {

    public long kvBlockBytes() {
        return kvLayerBytes * layers;
    }
}
