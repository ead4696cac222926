package dev.mooncakej.scheduler.admission;

/**
 * One admission mode (TR section 7): the decode load a request is judged by at arrival. One class per
 * mode, created by name through {@link dev.mooncakej.scheduler.AdmissionMode#rule()}. Every mode also
 * refuses a request whose predicted TTFT is over its SLO; that check is the scheduler's.
 */
public interface AdmissionRule {
    /**
     * The decode load of placing this request on decode instance {@code d} as this mode sees it at
     * arrival ({@code now}, its prefill predicted to take {@code ttft}); at or over 1 refuses it.
     */
    double decodeLoad(DecodeLoads s, double now, double ttft, int d, int inputTokens, int kvTokens);

    /** Whether the decode load is checked at arrival (otherwise only when the prefill is done). */
    boolean checksAtArrival();
}
