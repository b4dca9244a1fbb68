// Package aave reads the daily Aave V3 reserve-rate snapshots of
// ../shared/data (aave_v3_daily_rates_dev.csv and files in its format) into
// per-reserve daily series for backtests and imports.
package aave

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
)

// Row is one snapshot of one reserve. Rates are annual fractions
// (0.0312 = 3.12 %); indices are Aave's cumulative ray indices as decimals.
type Row struct {
	Snapshot            time.Time
	Network             string
	Symbol              string
	Asset               string // the reserve's asset address, as written in the file
	LiquidityRate       float64
	VariableBorrowRate  float64
	LiquidityIndex      float64
	VariableBorrowIndex float64
	ReserveFactor       float64
	Frozen              bool
	Paused              bool
	Active              bool
	BorrowingEnabled    bool
}

// Key names the reserve: "network/SYMBOL/asset_address".
func (r Row) Key() string { return r.Network + "/" + r.Symbol + "/" + r.Asset }

// Utilization estimates the reserve's utilization (0–1) from its rates, as
// the data's README gives it for a reserve without stable debt:
// supplyRate / (variableBorrowRate × (1 − reserveFactor))
// (ml.LendingUtilization). It is 0 when nothing is borrowed and is clamped
// to [0, 1].
func (r Row) Utilization() float64 {
	return ml.LendingUtilization(r.LiquidityRate, r.VariableBorrowRate, r.ReserveFactor)
}

// columns Read needs, by header name; others are ignored.
var columns = []string{
	"snapshot_utc", "network", "symbol", "asset_address", "current_liquidity_rate",
	"current_variable_borrow_rate", "liquidity_index", "variable_borrow_index",
	"reserve_factor", "frozen", "paused", "active", "borrowing_enabled",
}

// Read parses a CSV in the format of aave_v3_daily_rates_dev.csv. Columns
// are found by their header names, so extra or reordered columns are fine.
// Errors: EINVALID naming the line and column of the first bad value.
func Read(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "the CSV is empty")
	}
	if err != nil {
		return nil, csvError(err)
	}
	at := make(map[string]int, len(columns))
	for _, name := range columns {
		at[name] = -1
	}
	for i, h := range header {
		if _, ok := at[strings.TrimSpace(h)]; ok {
			at[strings.TrimSpace(h)] = i
		}
	}
	for _, name := range columns {
		if at[name] < 0 {
			return nil, obsqra.Errorf(obsqra.EINVALID, "the CSV has no %s column", name)
		}
	}
	var rows []Row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, csvError(err)
		}
		p := parser{rec: rec, at: at, line: line}
		row := Row{
			Snapshot:            p.time("snapshot_utc"),
			Network:             p.text("network"),
			Symbol:              p.text("symbol"),
			Asset:               strings.ToLower(p.text("asset_address")),
			LiquidityRate:       p.between("current_liquidity_rate", 0, maxRate),
			VariableBorrowRate:  p.between("current_variable_borrow_rate", 0, maxRate),
			LiquidityIndex:      p.positive("liquidity_index"),
			VariableBorrowIndex: p.positive("variable_borrow_index"),
			ReserveFactor:       p.between("reserve_factor", 0, 1),
			Frozen:              p.boolean("frozen"),
			Paused:              p.boolean("paused"),
			Active:              p.boolean("active"),
			BorrowingEnabled:    p.boolean("borrowing_enabled"),
		}
		if p.err != nil {
			return nil, p.err
		}
		rows = append(rows, row)
	}
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return obsqra.Errorf(obsqra.EINVALID, "CSV line %d: %v", pe.Line, pe.Err)
	}
	return fmt.Errorf("read aave csv: %w", err)
}

// parser reads typed fields of one record, keeping the first error.
type parser struct {
	rec  []string
	at   map[string]int
	line int
	err  error
}

func (p *parser) fail(col, value, want string) {
	if p.err == nil {
		p.err = obsqra.Errorf(obsqra.EINVALID, "CSV line %d, column %s: %q is not %s", p.line, col, value, want)
	}
}

func (p *parser) text(col string) string {
	v := strings.TrimSpace(p.rec[p.at[col]])
	if v == "" {
		p.fail(col, v, "a value")
	}
	return v
}

func (p *parser) number(col string) float64 {
	v := p.text(col)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(col, v, "a finite number")
	}
	return f
}

// maxRate bounds an annual rate (a fraction): 1000 is 100,000 % a year,
// far above anything a lending market quotes; beyond it a value is a
// corrupt file, not a market.
const maxRate = 1000

func (p *parser) between(col string, lo, hi float64) float64 {
	v := p.number(col)
	if p.err == nil && (v < lo || v > hi) {
		p.fail(col, p.rec[p.at[col]], fmt.Sprintf("between %g and %g", lo, hi))
	}
	return v
}

func (p *parser) positive(col string) float64 {
	v := p.number(col)
	if p.err == nil && !(v > 0 && v <= 1e9) {
		p.fail(col, p.rec[p.at[col]], "a positive index")
	}
	return v
}

func (p *parser) boolean(col string) bool {
	switch v := p.text(col); strings.ToLower(v) {
	case "true", "1":
		return true
	case "false", "0":
		return false
	default:
		p.fail(col, v, "True or False")
		return false
	}
}

func (p *parser) time(col string) time.Time {
	v := p.text(col)
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.fail(col, v, "an RFC 3339 time")
	}
	return t.UTC()
}

// Reserve is one reserve's daily history: the last snapshot of each UTC
// day it appears on, oldest first. Days without a snapshot stay missing.
type Reserve struct {
	Key     string // "network/SYMBOL/asset_address"
	Network string
	Symbol  string
	Asset   string
	Rows    []Row
}

// Reserves groups rows by reserve and keeps the last snapshot of each UTC
// day (the later row of the input among equal snapshot times). Reserves
// are sorted by Key.
func Reserves(rows []Row) []Reserve {
	byKey := make(map[string]int)
	var out []Reserve
	for _, r := range rows {
		k := r.Key()
		i, ok := byKey[k]
		if !ok {
			i = len(out)
			byKey[k] = i
			out = append(out, Reserve{Key: k, Network: r.Network, Symbol: r.Symbol, Asset: r.Asset})
		}
		out[i].Rows = append(out[i].Rows, r)
	}
	for i := range out {
		rs := out[i].Rows
		sort.SliceStable(rs, func(a, b int) bool { return rs[a].Snapshot.Before(rs[b].Snapshot) })
		daily := rs[:0]
		for _, r := range rs {
			if n := len(daily); n > 0 && obsqra.DateOf(daily[n-1].Snapshot) == obsqra.DateOf(r.Snapshot) {
				daily[n-1] = r
				continue
			}
			daily = append(daily, r)
		}
		out[i].Rows = daily
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out
}

// Series returns value of each daily row as a daily series.
func (r Reserve) Series(value func(Row) float64) ml.Series {
	s := ml.Series{Days: make([]obsqra.Date, len(r.Rows)), Values: make([]float64, len(r.Rows))}
	for i, row := range r.Rows {
		s.Days[i] = obsqra.DateOf(row.Snapshot)
		s.Values[i] = value(row)
	}
	return s
}

// LiquidityRates returns the daily supply rate (current_liquidity_rate, an
// annual fraction), with the day's utilisation (Row.Utilization) beside
// each value.
func (r Reserve) LiquidityRates() ml.Series {
	s := r.Series(func(row Row) float64 { return row.LiquidityRate })
	s.Utilization = make([]float64, len(r.Rows))
	for i, row := range r.Rows {
		s.Utilization[i] = row.Utilization()
	}
	return s
}

// ReadFile reads a CSV file in the Aave format and returns its reserves.
func ReadFile(path string) ([]Reserve, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	rows, err := Read(f)
	if err != nil {
		return nil, err
	}
	return Reserves(rows), nil
}
