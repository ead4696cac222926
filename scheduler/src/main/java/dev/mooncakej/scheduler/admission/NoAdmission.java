package dev.mooncakej.scheduler.admission;

/** Each stage checks its own load when it starts: prefill at arrival (TTFT), decode after the prefill. */
public final class NoAdmission implements AdmissionRule {
    @Override
    public double decodeLoad(DecodeLoads s, double now, double ttft, int d, int inputTokens, int kvTokens) {
        return 0;
    }

    @Override
    public boolean checksAtArrival() {
        return false;
    }
}
