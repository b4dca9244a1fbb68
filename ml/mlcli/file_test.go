package mlcli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeRatesCSV writes a CSV in the Aave format: USDC and DAI on one
// network over 60 days, with 2025-01-10 missing and two snapshots on
// 2025-01-20 (the later one must win).
func writeRatesCSV(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("snapshot_utc,commit,network,symbol,asset_address,current_liquidity_rate,current_variable_borrow_rate,liquidity_index,variable_borrow_index,reserve_factor,supply_cap,borrow_cap,loan_to_value,liquidation_threshold,frozen,paused,active,borrowing_enabled,last_update_timestamp\n")
	start := time.Date(2025, 1, 1, 21, 0, 0, 0, time.UTC)
	index := map[string]float64{"USDC": 1, "DAI": 1}
	for d := range 60 {
		if d == 9 {
			continue
		}
		at := start.AddDate(0, 0, d)
		for _, sym := range []string{"USDC", "DAI"} {
			rate := 0.03 + 0.005*math.Sin(float64(d)/5)
			if sym == "DAI" {
				rate = 0.05 - 0.01*math.Cos(float64(d)/7)
			}
			index[sym] *= 1 + rate/365
			if d == 19 {
				fmt.Fprintf(&b, "%s,c,testnet,%s,0x%s,0.9,0.1,1,1,0.1,0,0,0.7,0.8,False,False,True,True,0\n",
					at.Add(-time.Hour).Format(time.RFC3339Nano), sym, strings.Repeat("a", 40))
			}
			fmt.Fprintf(&b, "%s,c,testnet,%s,0x%s,%.6f,%.6f,%.9f,1,0.1,0,0,0.7,0.8,False,False,True,True,0\n",
				at.Format("2006-01-02T15:04:05.000000+00:00"), sym, strings.Repeat(map[string]string{"USDC": "a", "DAI": "b"}[sym], 40),
				rate, rate*1.6, index[sym])
		}
	}
	path := filepath.Join(t.TempDir(), "rates.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runMLFile(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), args, strings.NewReader(""), &out)
	return out.String(), err
}

func TestMLForecastCommand(t *testing.T) {
	t.Parallel()
	path := writeRatesCSV(t)
	out, err := runMLFile(t, "forecast", "--csv", path, "--horizon", "7", "--every", "5")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// 59 observed days per series; origins are the 30th to the 59th, every
	// 5th: 6 per series, DAI's before USDC's (series in key order).
	if len(lines) != 12 {
		t.Fatalf("forecast wrote %d lines, want 12:\n%s", len(lines), out)
	}
	var first, last forecastLine
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[11]), &last); err != nil {
		t.Fatal(err)
	}
	// The 30th observed day is 2025-01-31 (01-10 is missing).
	if first.Series != "testnet/DAI/0x"+strings.Repeat("b", 40) || first.Origin != "2025-01-31" || first.Target != "2025-02-07" || first.Horizon != 7 {
		t.Errorf("first line = %+v, want DAI from 2025-01-31 to 2025-02-07", first)
	}
	if !strings.HasPrefix(last.Series, "testnet/USDC/") || last.Origin != "2025-02-25" || last.Target != "2025-03-04" {
		t.Errorf("last line = %+v, want USDC from 2025-02-25 to 2025-03-04", last)
	}
	for _, l := range []forecastLine{first, last} {
		if !(l.Lower95 <= l.Lower80 && l.Lower80 <= l.Point && l.Point <= l.Upper80 && l.Upper80 <= l.Upper95) ||
			l.Point < 0.01 || l.Point > 0.07 || l.Model == "" || l.Confidence < 0 || l.Confidence > 1 {
			t.Errorf("forecast line %+v is not a sane forecast of a 1–7 %% rate", l)
		}
	}
}

func TestMLBacktestCommand(t *testing.T) {
	t.Parallel()
	path := writeRatesCSV(t)
	out, err := runMLFile(t, "backtest", "--csv", path, "--horizon", "7")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("backtest output %q: %v", out, err)
	}
	// Origins from the 30th observed day whose target is observed: 30 − 7 per series.
	if got["horizon"] != 7.0 || got["series"] != 2.0 || got["forecasts"] != 46.0 {
		t.Errorf("backtest = %s, want horizon 7, 2 series, 46 forecasts", out)
	}
	for _, k := range []string{"mae", "rmse", "maeNaive", "relativeMae", "coverage80", "coverage95"} {
		if v, ok := got[k].(float64); !ok || v < 0 {
			t.Errorf("backtest %s = %v, want a non-negative number", k, got[k])
		}
	}
}

// TestMLBacktestModel: the naive method measured against itself has a
// relative MAE of exactly 1; an unknown method is refused.
func TestMLBacktestModel(t *testing.T) {
	t.Parallel()
	path := writeRatesCSV(t)
	out, err := runMLFile(t, "backtest", "--csv", path, "--horizon", "7", "--model", "naive")
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ RelativeMAE float64 }
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.RelativeMAE != 1 {
		t.Errorf("backtest --model naive = %s (%v), want relativeMae 1", out, err)
	}
	if _, err := runMLFile(t, "backtest", "--csv", path, "--horizon", "7", "--model", "oracle"); err == nil || !strings.Contains(err.Error(), "oracle") {
		t.Errorf("backtest --model oracle error = %v, want it refused by name", err)
	}
}

func TestMLStrategiesCommand(t *testing.T) {
	t.Parallel()
	path := writeRatesCSV(t)
	out, err := runMLFile(t, "strategies", "--csv", path, "--thresholds", "0,200")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	n := len(backtestStrategies(5, 0))
	if len(lines) != 2*n+2*n { // a basket line and a summary line per strategy and threshold
		t.Fatalf("strategies wrote %d lines, want %d:\n%s", len(lines), 4*n, out)
	}
	var r struct {
		Strategy         string
		Basket           string
		RealisedYieldBps float64
	}
	for _, l := range lines[:2*n] {
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		// Both rates stay between 2.5 % and 6 %.
		if r.Basket != "testnet-stablecoins" || r.RealisedYieldBps < 250 || r.RealisedYieldBps > 600 {
			t.Errorf("strategy line %s: want testnet-stablecoins earning 250–600 bps", l)
		}
	}
}

func TestMLFileCommandsRefuseBadArguments(t *testing.T) {
	t.Parallel()
	path := writeRatesCSV(t)
	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("snapshot_utc,network\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"forecast", "--horizon", "7"}, "--csv FILE is required"},
		{[]string{"forecast", "--csv", path}, "--horizon must be between 1 and 365"},
		{[]string{"forecast", "--csv", path, "--horizon", "366"}, "--horizon must be between 1 and 365"},
		{[]string{"backtest", "--csv", path, "--horizon", "7", "--every", "0"}, "--every must be at least 1"},
		{[]string{"backtest", "--csv", path, "--horizon", "x"}, "invalid value"},
		{[]string{"backtest", "--csv", "/nonexistent.csv", "--horizon", "7"}, "no such file"},
		{[]string{"backtest", "--csv", bad, "--horizon", "7"}, "no symbol column"},
		{[]string{"strategies", "--csv", path, "--thresholds", "5,x"}, "--thresholds"},
		{[]string{"strategies", "--csv", path, "--cost", "-1"}, "--cost"},
		{[]string{"strategies", "--csv", path, "--horizon", "7"}, "flag provided but not defined: -horizon"},
	}
	for _, tt := range tests {
		_, err := runMLFile(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ml %q error = %v, want it to mention %q", tt.args, err, tt.want)
		}
	}
}

// TestMLStrategiesEvery: --every is the decision interval, 7 days unless
// given, and an explicit 1 means daily.
func TestMLStrategiesEvery(t *testing.T) {
	t.Parallel()
	path := writeRatesCSV(t)
	rebalances := func(args ...string) int {
		out, err := runMLFile(t, append([]string{"strategies", "--csv", path, "--thresholds", "0"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Strategy   string
			Rebalances int
		}
		if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &r); err != nil || r.Strategy != "equal" {
			t.Fatalf("first line %q (%v), want the equal-weight result", out, err)
		}
		return r.Rebalances
	}
	// Decisions from day 30 to day 59 (01-10 is missing): 29 days later.
	if weekly, daily := rebalances(), rebalances("--every", "1"); weekly != 4 || daily < 20 {
		t.Errorf("rebalances weekly %d, daily %d; want 4 and about 28", weekly, daily)
	}
}

// TestMLBacktestByNetwork: --by-network adds one line per network, named,
// after the line over every series, which is the same as without it.
func TestMLBacktestByNetwork(t *testing.T) {
	t.Parallel()
	one := writeRatesCSV(t)
	data, err := os.ReadFile(one)
	if err != nil {
		t.Fatal(err)
	}
	// A second network: the same rows under another name.
	lines := strings.SplitN(string(data), "\n", 2)
	two := filepath.Join(t.TempDir(), "two.csv")
	if err := os.WriteFile(two, []byte(string(data)+strings.ReplaceAll(lines[1], ",testnet,", ",othernet,")), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, err := runMLFile(t, "backtest", "--csv", two, "--horizon", "7")
	if err != nil {
		t.Fatal(err)
	}
	out, err := runMLFile(t, "backtest", "--csv", two, "--horizon", "7", "--by-network")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	if len(got) != 3 || got[0] != strings.TrimSpace(plain) {
		t.Fatalf("backtest --by-network = %q, want the pooled line %q then two", out, plain)
	}
	for i, network := range []string{"othernet", "testnet"} {
		var line struct {
			Network   string
			Series    int
			Forecasts int
		}
		if err := json.Unmarshal([]byte(got[i+1]), &line); err != nil || line.Network != network || line.Series != 2 || line.Forecasts != 46 {
			t.Errorf("line %d = %s (%v), want %s with 2 series and 46 forecasts", i+2, got[i+1], err, network)
		}
	}
}
