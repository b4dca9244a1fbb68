package ml

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sharedRatesCSV is the shared Aave V3 file, outside the repository.
const sharedRatesCSV = "../../shared/data/aave_v3_daily_rates_dev.csv"

// readRatesCSV reads current_liquidity_rate per reserve (network, symbol,
// asset_address) from the shared Aave V3 CSV as daily series, the last
// snapshot of each UTC day, in key order. It skips the test when the file is
// absent.
func readRatesCSV(t testing.TB, path string) (keys []string, series []Series) {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is absent", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, c := range []string{"snapshot_utc", "network", "symbol", "asset_address", "current_liquidity_rate"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("%s has no column %s", path, c)
		}
	}
	type obs struct {
		times  []time.Time
		values []float64
	}
	byKey := map[string]*obs{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ts, err := time.Parse(time.RFC3339Nano, rec[col["snapshot_utc"]])
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(rec[col["current_liquidity_rate"]], 64)
		if err != nil {
			t.Fatal(err)
		}
		k := rec[col["network"]] + "/" + rec[col["symbol"]] + "/" + rec[col["asset_address"]]
		o := byKey[k]
		if o == nil {
			o = &obs{}
			byKey[k] = o
		}
		o.times = append(o.times, ts)
		o.values = append(o.values, v)
	}
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s, err := DailySeries(byKey[k].times, byKey[k].values)
		if err != nil {
			t.Fatal(err)
		}
		series = append(series, s)
	}
	return keys, series
}

// readExcerpt reads testdata/aave_rates_excerpt.csv (series,day,value).
func readExcerpt(t testing.TB) (keys []string, series []Series) {
	t.Helper()
	f, err := os.Open("testdata/aave_rates_excerpt.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for _, rec := range recs[1:] {
		d, err := ParseDay(rec[1])
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		i, ok := idx[rec[0]]
		if !ok {
			i = len(keys)
			idx[rec[0]] = i
			keys = append(keys, rec[0])
			series = append(series, Series{})
		}
		series[i].Days = append(series[i].Days, d)
		series[i].Values = append(series[i].Values, v)
	}
	for i, s := range series {
		if err := s.Validate(); err != nil {
			t.Fatalf("excerpt series %s: %v", keys[i], err)
		}
	}
	return keys, series
}

func fmtAccuracy(a Accuracy) string {
	return fmt.Sprintf("h=%d series=%d forecasts=%d MAE=%.6f naiveMAE=%.6f relMAE=%.4f RMSE=%.6f cov80=%.3f cov95=%.3f",
		a.Horizon, a.Series, a.Forecasts, a.MAE, a.MAENaive, a.RelativeMAE, a.RMSE, a.Coverage80, a.Coverage95)
}

// TestBacktestAlternatives compares candidate methods on the shared file.
// It takes minutes, so it runs only with OBSQRA_BACKTEST=alternatives.
func TestBacktestAlternatives(t *testing.T) {
	if os.Getenv("OBSQRA_BACKTEST") != "alternatives" {
		t.Skip("set OBSQRA_BACKTEST=alternatives to compare methods on the shared data")
	}
	_, series := readRatesCSV(t, sharedRatesCSV)
	every := 7
	if e, err := strconv.Atoi(os.Getenv("OBSQRA_BACKTEST_EVERY")); err == nil {
		every = e
	}
	models := strings.Split(os.Getenv("OBSQRA_BACKTEST_MODELS"), ";")
	if models[0] == "" {
		models = []string{"naive", "drift", "ses", "holt", "damped", "ets", DefaultModel, "combo(naive,damped)", "combo(naive,ses,damped)"}
	}
	for _, m := range models {
		for _, h := range []int{7, 30} {
			start := time.Now()
			a, err := EvaluateForecasts(series, h, every, ForecastOptions{Model: m, NonNegative: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%-28s every=%d %s (%.1fs)", m, every, fmtAccuracy(a), time.Since(start).Seconds())
		}
	}
}

func TestBacktestHalves(t *testing.T) {
	if os.Getenv("OBSQRA_BACKTEST") != "halves" {
		t.Skip()
	}
	_, series := readRatesCSV(t, sharedRatesCSV)
	split, _ := ParseDay("2026-02-01")
	for _, m := range strings.Split(os.Getenv("OBSQRA_BACKTEST_MODELS"), ";") {
		line := fmt.Sprintf("%-45s", m)
		for _, h := range []int{7, 30} {
			var e, n [2]float64
			var c80, c95, cnt float64
			for _, s := range series {
				WalkForward(s, h, 3, ForecastOptions{Model: m, NonNegative: true}, func(o Outcome) {
					if !o.HasActual {
						return
					}
					k := 0
					if o.Origin >= split {
						k = 1
					}
					e[k] += math.Abs(o.Actual - o.Point)
					n[k] += math.Abs(o.Actual - o.Last)
					cnt++
					if o.Lower80 <= o.Actual && o.Actual <= o.Upper80 {
						c80++
					}
					if o.Lower95 <= o.Actual && o.Actual <= o.Upper95 {
						c95++
					}
				})
			}
			line += fmt.Sprintf(" | h%d all=%.4f H1=%.4f H2=%.4f c80=%.3f c95=%.3f", h, (e[0]+e[1])/(n[0]+n[1]), e[0]/n[0], e[1]/n[1], c80/cnt, c95/cnt)
		}
		t.Log(line)
	}
}

func TestBacktestPIT(t *testing.T) {
	if os.Getenv("OBSQRA_BACKTEST") != "pit" {
		t.Skip()
	}
	_, series := readRatesCSV(t, sharedRatesCSV)
	m := os.Getenv("OBSQRA_BACKTEST_MODELS")
	for _, h := range []int{7, 30} {
		var outs []Outcome
		var hist [10]int
		var n, in80, constant, constIn, widthZero int
		for _, s := range series {
			WalkForward(s, h, 3, ForecastOptions{Model: m, NonNegative: true}, func(o Outcome) {
				if !o.HasActual {
					return
				}
				outs = append(outs, o)
				w := s.Until(o.Origin)
				allSame := true
				for _, v := range w.Values {
					if v != w.Values[0] {
						allSame = false
					}
				}
				in := o.Lower80 <= o.Actual && o.Actual <= o.Upper80
				if allSame {
					constant++
					if in {
						constIn++
					}
					return
				}
				if o.Lower80 == o.Upper80 {
					widthZero++
				}
				n++
				if in {
					in80++
				}
				// position of the actual inside the 80% interval: below, 8 bins, above
				switch {
				case o.Actual < o.Lower80:
					hist[0]++
				case o.Actual > o.Upper80:
					hist[9]++
				default:
					hist[1]++
				}
			})
		}
		for _, b := range Calibration(outs, 10) {
			t.Logf("h=%d conf [%.1f,%.1f) n=%5d mean=%.3f hit=%.3f", h, b.Lo, b.Hi, b.Forecasts, b.MeanConfidence, b.HitRate)
		}
		t.Logf("h=%d constant-history: %d (covered %d); others: %d cov80=%.3f below=%.3f above=%.3f zero-width=%d", h, constant, constIn, n, float64(in80)/float64(n), float64(hist[0])/float64(n), float64(hist[9])/float64(n), widthZero)
	}
}
