package dev.mooncakej.scheduler.admission;

/** TR 7.2: the chosen decode instance's load as it is now, with this request added. */
public final class EarlyRejection implements AdmissionRule {
    @Override
    public double decodeLoad(DecodeLoads s, double now, double ttft, int d, int inputTokens, int kvTokens) {
        return s.chosenLoadNow(d, inputTokens, kvTokens);
    }

    @Override
    public boolean checksAtArrival() {
        return true;
    }
}
