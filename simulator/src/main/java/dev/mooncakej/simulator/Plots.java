package dev.mooncakej.simulator;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Map;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.VectorGraphicsEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.internal.chartpart.Chart;
import org.knowm.xchart.style.markers.SeriesMarkers;

/** Charts of simulation results (XChart), written as PNG and SVG. */
public final class Plots {
    private Plots() {}

    /** Load over time (10-second means of the per-second samples), one series per run. */
    public static void loadOverTime(Map<String, SimulationResult> runs, boolean decode, String subtitle, Path dir) {
        XYChart chart = new XYChartBuilder()
                .width(1000)
                .height(420)
                .title((decode ? "Decode" : "Prefill") + " load over time (" + subtitle + ")")
                .xAxisTitle("simulated time (s)")
                .yAxisTitle(decode ? "decode load (max TBT/SLO, KV/capacity)" : "prefill load (mean queue / TTFT SLO)")
                .build();
        chart.getStyler().setMarkerSize(0);
        runs.forEach((name, r) -> {
            double[] y = decode ? r.decodeLoad() : r.prefillLoad();
            int n = Math.max(1, y.length / 10);
            double[] xs = new double[n], ys = new double[n];
            for (int i = 0; i < n; i++) {
                double s = 0;
                int c = 0;
                for (int j = i * 10; j < Math.min(y.length, i * 10 + 10); j++, c++) s += y[j];
                xs[i] = r.loadTimes()[Math.min(r.loadTimes().length - 1, i * 10)];
                ys[i] = c == 0 ? 0 : s / c;
            }
            chart.addSeries(name, xs, ys).setMarker(SeriesMarkers.NONE);
        });
        save(chart, dir, decode ? "decode-load-over-time" : "prefill-load-over-time");
    }

    /** Effective request ratio against the TBT SLO, one series per system. */
    public static void effectiveRatio(Map<String, double[][]> series, String subtitle, Path dir) {
        XYChart chart = new XYChartBuilder()
                .width(700)
                .height(420)
                .title("Requests meeting both SLOs (" + subtitle + ")")
                .xAxisTitle("TBT SLO (ms)")
                .yAxisTitle("effective request ratio")
                .build();
        series.forEach((name, xy) -> chart.addSeries(name, xy[0], xy[1]));
        chart.getStyler().setYAxisMin(0.0).setYAxisMax(1.0);
        save(chart, dir, "effective-ratio-vs-tbt-slo");
    }

    /**
     * Effective request capacity against the TBT SLO (FAST Fig. 1): per system, the highest load (the
     * trace's speed factor) at which the share of requests meeting both SLOs reaches the target.
     */
    public static void capacity(Map<String, double[][]> series, String subtitle, Path dir) {
        XYChart chart = new XYChartBuilder()
                .width(900)
                .height(420)
                .title("Effective request capacity (" + subtitle + ")")
                .xAxisTitle("TBT SLO (ms)")
                .yAxisTitle("highest speed factor meeting the SLO target")
                .build();
        series.forEach((name, xy) -> chart.addSeries(name, xy[0], xy[1]));
        chart.getStyler().setYAxisMin(0.0);
        save(chart, dir, "capacity-vs-tbt-slo");
    }

    /** FAST Fig. 5: mean TTFT by prefill policy, one bar each. */
    public static void ttftByPolicy(Map<String, Double> meanTtft, String subtitle, Path dir) {
        CategoryChart chart = new CategoryChartBuilder()
                .width(900)
                .height(420)
                .title("Mean TTFT by prefill policy (" + subtitle + ")")
                .xAxisTitle("policy")
                .yAxisTitle("mean TTFT (s)")
                .build();
        chart.addSeries("mean TTFT", new ArrayList<>(meanTtft.keySet()), new ArrayList<>(meanTtft.values()));
        chart.getStyler().setLegendVisible(false);
        save(chart, dir, "ttft-by-policy");
    }

    private static void save(Chart<?, ?> chart, Path dir, String name) {
        try {
            Files.createDirectories(dir);
            BitmapEncoder.saveBitmap(chart, dir.resolve(name).toString(), BitmapEncoder.BitmapFormat.PNG);
            VectorGraphicsEncoder.saveVectorGraphic(
                    chart, dir.resolve(name).toString(), VectorGraphicsEncoder.VectorGraphicsFormat.SVG);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the chart " + name + " into " + dir, e);
        }
    }
}
