package mlcli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/aave"
	"github.com/obsqra/obsqra/ml"
)

// fileFlags are the flags of the commands that read an Aave CSV.
type fileFlags struct {
	csv     string
	horizon int
	every   int
	model   string
}

// options are the forecasting options for lending rates, which are never
// negative, with the method the flags chose.
func (f fileFlags) options() ml.ForecastOptions {
	return ml.ForecastOptions{NonNegative: true, Model: f.model}
}

// parseFileFlags parses the flags of a command reading an Aave CSV: --csv
// and --every (default every, in the command's unit) always; --horizon
// (required) and --model when forecasting; extra adds the command's own.
func parseFileFlags(name string, args []string, forecasting bool, every int, extra func(*flag.FlagSet)) (fileFlags, error) {
	var f fileFlags
	fs := flag.NewFlagSet("ml "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.csv, "csv", "", "CSV file in the format of ../shared/data/aave_v3_daily_rates_dev.csv")
	fs.IntVar(&f.every, "every", every, "use every Nth eligible origin, or decide every N days")
	if forecasting {
		fs.IntVar(&f.horizon, "horizon", 0, "forecast horizon in days, 1–365")
		fs.StringVar(&f.model, "model", "", "forecasting method (default "+ml.DefaultModel+"); e.g. naive, ses, "+ml.SeriesModel)
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return f, fmt.Errorf("ml %s: %w\n%s", name, err, Usage)
	}
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("ml %s: unexpected arguments %q", name, fs.Args())
	case f.csv == "":
		return f, fmt.Errorf("ml %s: --csv FILE is required", name)
	case forecasting && (f.horizon < 1 || f.horizon > 365):
		return f, fmt.Errorf("ml %s: --horizon must be between 1 and 365 days, got %d", name, f.horizon)
	case f.every < 1:
		return f, fmt.Errorf("ml %s: --every must be at least 1, got %d", name, f.every)
	}
	return f, nil
}

type forecastLine struct {
	Series     string  `json:"series"`
	Origin     string  `json:"origin"`
	Target     string  `json:"target"`
	Horizon    int     `json:"horizon"`
	Point      float64 `json:"point"`
	Lower80    float64 `json:"lower80"`
	Upper80    float64 `json:"upper80"`
	Lower95    float64 `json:"lower95"`
	Upper95    float64 `json:"upper95"`
	Model      string  `json:"model"`
	Confidence float64 `json:"confidence"`
	Tolerance  float64 `json:"tolerance"`
}

// mlForecast writes one line per series and origin: the forecast of
// current_liquidity_rate at origin + horizon from the data up to origin.
// Series run in parallel; their lines come out in series order.
func mlForecast(ctx context.Context, args []string, stdout io.Writer) error {
	f, err := parseFileFlags("forecast", args, true, 1, nil)
	if err != nil {
		return err
	}
	reserves, err := aave.ReadFile(f.csv)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(stdout, 256<<10)
	err = inOrder(ctx, len(reserves), func(i int) ([]byte, error) {
		var buf []byte
		r := reserves[i]
		var bad error
		err := ml.WalkForward(r.LiquidityRates(), f.horizon, f.every, f.options(), func(o ml.Outcome) {
			line, err := json.Marshal(forecastLine{
				Series: r.Key, Origin: o.Origin.String(), Target: o.Target.String(), Horizon: o.Horizon,
				Point: o.Point, Lower80: o.Lower80, Upper80: o.Upper80, Lower95: o.Lower95, Upper95: o.Upper95,
				Model: o.Model, Confidence: o.Confidence, Tolerance: o.Tolerance,
			})
			if err != nil && bad == nil {
				bad = fmt.Errorf("forecast from %s: %w", o.Origin, err)
			}
			buf = append(append(buf, line...), '\n')
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("series %s: %w", r.Key, err)
		}
		return buf, nil
	}, func(out []byte) error {
		_, err := bw.Write(out)
		return err
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// inOrder computes work(0…n−1) on GOMAXPROCS goroutines and hands each
// result to emit in index order, as soon as its predecessors are out.
func inOrder(ctx context.Context, n int, work func(int) ([]byte, error), emit func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		out []byte
		err error
	}
	results := make([]chan result, n)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out, err := work(i)
				results[i] <- result{out, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	for i := range n {
		var r result
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			return r.err
		}
		if err := emit(r.out); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
	}
	return nil
}

// jsonFloat writes NaN (a ratio with nothing to divide by) as null.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 64), nil
}

// mlBacktest writes the walk-forward accuracy of the forecasts over every
// series of the file as one JSON object; with --by-network, then one more
// per network (its "network" named), in the networks' order of name.
func mlBacktest(ctx context.Context, args []string, stdout io.Writer) error {
	var byNetwork, lono bool
	f, err := parseFileFlags("backtest", args, true, 1, func(fs *flag.FlagSet) {
		fs.BoolVar(&byNetwork, "by-network", false, "also one line per network")
		fs.BoolVar(&lono, "leave-one-network-out", false, "score the global model on each network fitted on the others")
	})
	if err != nil {
		return err
	}
	reserves, err := aave.ReadFile(f.csv)
	if err != nil {
		return err
	}
	series := make([]ml.Series, len(reserves))
	networks := map[string][]ml.Series{}
	for i, r := range reserves {
		series[i] = r.LiquidityRates()
		networks[r.Network] = append(networks[r.Network], series[i])
	}
	enc := json.NewEncoder(stdout)
	names := slices.Sorted(maps.Keys(networks))
	if lono {
		if f.model != "" && f.model != "global" {
			return fmt.Errorf("ml backtest: --leave-one-network-out fits and scores the global model, not --model %s", f.model)
		}
		groups := make([][]ml.Series, len(names))
		for i, n := range names {
			groups[i] = networks[n]
		}
		pooled, per, err := ml.LeaveOneGroupOut(groups, f.horizon, f.every, f.options())
		if err != nil {
			return err
		}
		line := accuracyLine(pooled, "")
		line.Protocol = "leave-one-network-out"
		if err := enc.Encode(line); err != nil {
			return err
		}
		for i, n := range names {
			line := accuracyLine(per[i], n)
			line.Protocol = "leave-one-network-out"
			if err := enc.Encode(line); err != nil {
				return err
			}
		}
		return nil
	}
	acc, err := ml.EvaluateForecasts(series, f.horizon, f.every, f.options())
	if err != nil {
		return err
	}
	if err := enc.Encode(accuracyLine(acc, "")); err != nil || !byNetwork {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		acc, err := ml.EvaluateForecasts(networks[n], f.horizon, f.every, f.options())
		if err != nil {
			return fmt.Errorf("network %s: %w", n, err)
		}
		if err := enc.Encode(accuracyLine(acc, n)); err != nil {
			return err
		}
	}
	return nil
}

// backtestLine is a line of ml backtest: the accuracy over every series,
// or over one network's (Network set).
type backtestLine struct {
	// Protocol is "leave-one-network-out" for the lines of that protocol:
	// each network's forecasts come from the global model fitted on the
	// other networks, and the line without a network pools them.
	Protocol    string    `json:"protocol,omitempty"`
	Network     string    `json:"network,omitempty"`
	Horizon     int       `json:"horizon"`
	Series      int       `json:"series"`
	Forecasts   int       `json:"forecasts"`
	MAE         jsonFloat `json:"mae"`
	RMSE        jsonFloat `json:"rmse"`
	MAENaive    jsonFloat `json:"maeNaive"`
	RelativeMAE jsonFloat `json:"relativeMae"`
	Coverage80  jsonFloat `json:"coverage80"`
	Coverage95  jsonFloat `json:"coverage95"`
	// The forecasts of series that moved in the 30 days up to their
	// origin, and their coverage (ml.Outcome.Moved).
	MovingForecasts  int       `json:"movingForecasts"`
	MovingCoverage80 jsonFloat `json:"movingCoverage80"`
	MovingCoverage95 jsonFloat `json:"movingCoverage95"`
	// Calibration is the calibration of confidence by decile, and
	// calibrationGap its largest |meanConfidence − hitRate|.
	Calibration    []calibrationBin `json:"calibration"`
	CalibrationGap jsonFloat        `json:"calibrationGap"`
}

type calibrationBin struct {
	Lo             float64   `json:"lo"`
	Hi             float64   `json:"hi"`
	Forecasts      int       `json:"forecasts"`
	MeanConfidence jsonFloat `json:"meanConfidence"`
	HitRate        jsonFloat `json:"hitRate"`
}

func accuracyLine(acc ml.Accuracy, network string) backtestLine {
	bins := make([]calibrationBin, len(acc.Calibration))
	for i, b := range acc.Calibration {
		bins[i] = calibrationBin{b.Lo, b.Hi, b.Forecasts, jsonFloat(b.MeanConfidence), jsonFloat(b.HitRate)}
	}
	return backtestLine{"", network, acc.Horizon, acc.Series, acc.Forecasts, jsonFloat(acc.MAE), jsonFloat(acc.RMSE), jsonFloat(acc.MAENaive),
		jsonFloat(acc.RelativeMAE), jsonFloat(acc.Coverage80), jsonFloat(acc.Coverage95),
		acc.MovingForecasts, jsonFloat(acc.MovingCoverage80), jsonFloat(acc.MovingCoverage95), bins, jsonFloat(acc.CalibrationGap)}
}

// mlStrategies backtests the allocation strategies on the file's USD
// stablecoin baskets (one per network): a line per basket, strategy and
// threshold, then a summary line per strategy and threshold.
func mlStrategies(ctx context.Context, args []string, stdout io.Writer) error {
	var thresholds string
	var cost float64
	f, err := parseFileFlags("strategies", args, false, 7, func(fs *flag.FlagSet) {
		fs.StringVar(&thresholds, "thresholds", "0,100,500", "rebalancing thresholds (bps of one-way turnover)")
		fs.Float64Var(&cost, "cost", 5, "trading cost in bps of the traded notional")
	})
	if err != nil {
		return err
	}
	var levels []int
	for _, s := range strings.Split(thresholds, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 0 || v > 10_000 {
			return fmt.Errorf("ml strategies: --thresholds: %q is not a number of bps from 0 to 10000", s)
		}
		levels = append(levels, v)
	}
	if cost < 0 || math.IsNaN(cost) || math.IsInf(cost, 0) {
		return errors.New("ml strategies: --cost must not be negative")
	}
	reserves, err := aave.ReadFile(f.csv)
	if err != nil {
		return err
	}
	baskets, err := aave.StablecoinBaskets(reserves, 0.9)
	if err != nil {
		return err
	}
	names := backtestStrategies(cost, 0)
	type key struct {
		strategy  string
		threshold int
	}
	type summary struct {
		Summary          bool    `json:"summary"`
		Strategy         string  `json:"strategy"`
		ThresholdBps     int     `json:"thresholdBps"`
		Baskets          int     `json:"baskets"`
		RealisedYieldBps float64 `json:"realisedYieldBps"`
		VolatilityBps    float64 `json:"volatilityBps"`
		WorstDrawdownBps float64 `json:"worstDrawdownBps"`
		Turnover         float64 `json:"turnover"`
		Rebalances       float64 `json:"rebalances"`
	}
	sums := make(map[key]*summary)
	var order []key
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	for _, b := range baskets {
		for k := range names {
			for _, th := range levels {
				if err := ctx.Err(); err != nil {
					return err
				}
				// The threshold is each strategy's own: a drift band for
				// the fixed rules, the least net gain for the optimiser.
				s, drift := backtestStrategies(cost, th)[k], th
				if _, ok := s.(ml.Optimizer); ok {
					drift = 0
				}
				r, err := ml.RunStrategy(b, s, ml.BacktestConfig{EveryDays: f.every, ThresholdBps: drift, CostBps: cost})
				if err != nil {
					return fmt.Errorf("basket %s, strategy %s: %w", b.Name, s.Name(), err)
				}
				r.ThresholdBps = th
				if err := enc.Encode(r); err != nil {
					return err
				}
				k := key{s.Name(), th}
				sum := sums[k]
				if sum == nil {
					sum = &summary{Summary: true, Strategy: k.strategy, ThresholdBps: th}
					sums[k] = sum
					order = append(order, k)
				}
				sum.Baskets++
				sum.RealisedYieldBps += r.RealisedYieldBps
				sum.VolatilityBps += r.VolatilityBps
				sum.WorstDrawdownBps += r.WorstDrawdownBps
				sum.Turnover += r.Turnover
				sum.Rebalances += float64(r.Rebalances)
			}
		}
	}
	for _, k := range order {
		s := sums[k]
		n := float64(s.Baskets)
		s.RealisedYieldBps /= n
		s.VolatilityBps /= n
		s.WorstDrawdownBps /= n
		s.Turnover /= n
		s.Rebalances /= n
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return nil
}

// backtestStrategies are the strategies `obsqra ml strategies` compares,
// for a rebalancing threshold of thresholdBps. The fixed rules (equal
// weight, the contract's parity, the highest APY) take it as a drift band:
// RunStrategy moves to their target only when the one-way turnover reaches
// it. The optimiser runs at each tolerance with a new user's other
// preferences and takes it as a user's rebalance threshold: it moves only
// when the forecast gain, net of the cost repaid within 30 days, is at
// least thresholdBps a year.
func backtestStrategies(cost float64, thresholdBps int) []ml.Strategy {
	prefs := obsqra.DefaultPreferences()
	strategies := []ml.Strategy{ml.EqualWeight{}, ml.Parity{Params: obsqra.DefaultRiskParams()}, ml.HighestAPY{}}
	for _, t := range []obsqra.RiskTolerance{obsqra.RiskLow, obsqra.RiskMedium, obsqra.RiskHigh} {
		strategies = append(strategies, ml.Optimizer{Tolerance: t, MaxSingleBps: prefs.MaxSingleBps,
			MinDiversification: prefs.MinDiversification, ThresholdBps: thresholdBps,
			SlippageBps: cost, Params: obsqra.DefaultRiskParams()})
	}
	return strategies
}
