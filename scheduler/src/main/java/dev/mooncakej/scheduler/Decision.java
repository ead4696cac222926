package dev.mooncakej.scheduler;

/**
 * One scheduling decision (times in seconds).
 *
 * @param prefixBlocks   prefix blocks the chosen prefill instance will reuse (local, or fetched)
 * @param fetchFrom      the instance to pull the missing prefix from, or -1 (kvcache-centric only)
 * @param fetchBlocks    blocks pulled from {@code fetchFrom}
 * @param decodeLoad     the decode load the admission used (now, or predicted at prefill end)
 */
public record Decision(
        boolean accepted,
        String rejectReason,
        int prefill,
        int decode,
        int prefixBlocks,
        int fetchFrom,
        int fetchBlocks,
        double transferSeconds,
        double queueSeconds,
        double prefillSeconds,
        double ttft,
        double tbt,
        double prefillLoad,
        double decodeLoad) {

    public static final String TTFT_SLO = "predicted TTFT over its SLO";
    public static final String DECODE_LOAD = "decode load (TBT over its SLO, or KV over capacity) at or over 1";
}
