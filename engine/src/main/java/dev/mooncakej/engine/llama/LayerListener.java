package dev.mooncakej.engine.llama;

/** Told after each layer of a forward pass, once that layer's K and V of every row are in the cache. */
@FunctionalInterface
public interface LayerListener {
    LayerListener NONE = layer -> {};

    void onLayer(int layer);
}
