package ml

import (
	"testing"

	"github.com/obsqra/obsqra"
)

// fcBenchSeries is the longest excerpt series (ethereum/USDC, 395 days) cut
// to its first n observations.
func fcBenchSeries(b *testing.B, n int) Series {
	b.Helper()
	keys, series := fcReadExcerpt(b)
	for i, k := range keys {
		if k == "ethereum/USDC" {
			s := series[i]
			return Series{Days: s.Days[:n], Values: s.Values[:n]}
		}
	}
	b.Fatal("ethereum/USDC is not in the excerpt")
	return Series{}
}

// BenchmarkFitSelect365 fits SES, Holt and damped trend by maximum
// likelihood to 365 daily points and picks one by AICc.
func BenchmarkFitSelect365(b *testing.B) {
	s := fcBenchSeries(b, 365)
	spec, _ := fcParseModel("ets")
	b.ReportAllocs()
	for b.Loop() {
		fcFitModel(newFCData(s), spec, 7)
	}
}

// BenchmarkForecastSeries365 is one call of the default method, what the
// backtest makes for every origin.
func BenchmarkForecastSeries365(b *testing.B) {
	s := fcBenchSeries(b, 365)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForecastSeries(s, s.Days[364], 7, ForecastOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForecastSeries365Select is one call with SeriesModel, the
// per-series default before the global model.
func BenchmarkForecastSeries365Select(b *testing.B) {
	s := fcBenchSeries(b, 365)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForecastSeries(s, s.Days[364], 7, ForecastOptions{Model: SeriesModel}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForecastSeries365ETS is one call with AICc-selected exponential
// smoothing and calibrated intervals.
func BenchmarkForecastSeries365ETS(b *testing.B) {
	s := fcBenchSeries(b, 365)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForecastSeries(s, s.Days[364], 7, ForecastOptions{Model: "ets"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForecastRisk365 forecasts a risk score from two 365-day inputs
// with 2000 simulated draws.
func BenchmarkForecastRisk365(b *testing.B) {
	u := fcBenchSeries(b, 365)
	in := RiskForecastInput{
		Utilization:   Series{Days: u.Days, Values: make([]float64, len(u.Values))},
		Volatility:    Series{Days: u.Days, Values: make([]float64, len(u.Values))},
		LiquidityTier: 1, AuditScore: 80, AgeDays: 300, Params: obsqra.DefaultRiskParams(),
	}
	for i, v := range u.Values {
		in.Utilization.Values[i] = float64(int64(v * 50_000))
		in.Volatility.Values[i] = float64(int64(v * 20_000))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForecastRisk(in, u.Days[364], 7, 1, ForecastOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
