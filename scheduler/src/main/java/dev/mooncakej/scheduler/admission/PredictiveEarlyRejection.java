package dev.mooncakej.scheduler.admission;

/** TR 7.4: the chosen decode instance's load predicted for when this request's prefill would end. */
public final class PredictiveEarlyRejection implements AdmissionRule {
    @Override
    public double decodeLoad(DecodeLoads s, double now, double ttft, int d, int inputTokens, int kvTokens) {
        return s.chosenLoadAt(now + ttft, d, inputTokens, kvTokens);
    }

    @Override
    public boolean checksAtArrival() {
        return true;
    }
}
