package dev.mooncakej.scheduler;

import dev.mooncakej.scheduler.admission.AdmissionRule;
import dev.mooncakej.scheduler.admission.EarlyRejection;
import dev.mooncakej.scheduler.admission.NoAdmission;
import dev.mooncakej.scheduler.admission.PredictiveEarlyRejection;
import java.util.Arrays;
import java.util.Locale;

/** When a request is rejected (TR section 7). */
public enum AdmissionMode {
    /** Each stage checks its own load when it starts: prefill at arrival, decode after the prefill. */
    NONE,
    /** At arrival, reject when max(prefill load, decode load now) >= 1. */
    EARLY_REJECTION,
    /** At arrival, with the decode load predicted for the moment this request's prefill would end. */
    PREDICTIVE_EARLY_REJECTION;

    /** This mode's rule. */
    public AdmissionRule rule() {
        return switch (this) {
            case NONE -> new NoAdmission();
            case EARLY_REJECTION -> new EarlyRejection();
            case PREDICTIVE_EARLY_REJECTION -> new PredictiveEarlyRejection();
        };
    }

    public String cliName() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    public static AdmissionMode parse(String s) {
        for (AdmissionMode m : values()) if (m.cliName().equals(s)) return m;
        throw new IllegalArgumentException("admission mode '" + s + "' is not known; expected one of "
                + Arrays.stream(values()).map(AdmissionMode::cliName).toList());
    }
}
