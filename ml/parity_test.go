package ml

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
)

func TestScoreRiskBranches(t *testing.T) {
	t.Parallel()
	d := obsqra.DefaultRiskParams()
	tests := []struct {
		name string
		in   RiskInputs
		p    obsqra.RiskParams
		want RiskScore
	}{
		{
			// 8000×25/10000 = 20; 2500×40/10000 = 10; tier 1 = 5;
			// 15×3/10 = 4 (4.5 floored); 365×10/730 = 5.
			name: "typical, tier 1",
			in:   RiskInputs{UtilizationBps: 8000, VolatilityBps: 2500, LiquidityTier: 1, AuditScore: 85, AgeDays: 365},
			p:    d,
			want: RiskScore{Score: 44, Utilization: 20, Volatility: 10, Liquidity: 5, Audit: 4, Age: 5, Unclamped: 44},
		},
		{
			name: "zero total score clamps up to clampMin, tier 0, age at the cap",
			in:   RiskInputs{UtilizationBps: 0, VolatilityBps: 0, LiquidityTier: 0, AuditScore: 100, AgeDays: 730},
			p:    d,
			want: RiskScore{Score: 5},
		},
		{
			// 12.5 → 12; 1.332 → 1; tier 2 = 15; 50×3/10 = 15; 630×10/730 = 8.63 → 8.
			name: "floors everywhere, tier 2",
			in:   RiskInputs{UtilizationBps: 5000, VolatilityBps: 333, LiquidityTier: 2, AuditScore: 50, AgeDays: 100},
			p:    d,
			want: RiskScore{Score: 51, Utilization: 12, Volatility: 1, Liquidity: 15, Audit: 15, Age: 8, Unclamped: 51},
		},
		{
			// 25 + 4000 + 30 + 30 + 10 = 4095, clamped to 95.
			name: "everything at its maximum clamps down to clampMax, tier 3, age 0",
			in:   RiskInputs{UtilizationBps: 10000, VolatilityBps: 1_000_000, LiquidityTier: 3, AuditScore: 0, AgeDays: 0},
			p:    d,
			want: RiskScore{Score: 95, Utilization: 25, Volatility: 4000, Liquidity: 30, Audit: 30, Age: 10, Unclamped: 4095},
		},
		{
			name: "age beyond the cap",
			in:   RiskInputs{AuditScore: 100, AgeDays: 36500, LiquidityTier: 3},
			p:    d,
			want: RiskScore{Score: 30, Liquidity: 30, Unclamped: 30},
		},
		{
			// (730 − 729) × 10 / 730 = 0.0137 → 0: one day short of the cap scores 0.
			name: "age one day below the cap floors to zero",
			in:   RiskInputs{AuditScore: 100, AgeDays: 729, LiquidityTier: 2},
			p:    d,
			want: RiskScore{Score: 15, Liquidity: 15, Unclamped: 15},
		},
		{
			// 73 × 10 / 730 = 1 exactly.
			name: "age risk exactly one",
			in:   RiskInputs{AuditScore: 100, AgeDays: 657, LiquidityTier: 1},
			p:    d,
			want: RiskScore{Score: 6, Liquidity: 5, Age: 1, Unclamped: 6},
		},
		{
			name: "custom parameters, no clamping range",
			in:   RiskInputs{UtilizationBps: 9999, VolatilityBps: 10001, LiquidityTier: 3, AuditScore: 99, AgeDays: 1},
			p: obsqra.RiskParams{WUtilization: 100, WVolatility: 1, WLiquidity0: 1, WLiquidity1: 2, WLiquidity2: 3, WLiquidity3: 4, WAudit: 9,
				WAge: 7, AgeCapDays: 2, ClampMin: 0, ClampMax: 100},
			// 9999×100/10000 = 99; 10001/10000 = 1; 4; 1×9/10 = 0; 1×7/2 = 3.
			want: RiskScore{Score: 100, Utilization: 99, Volatility: 1, Liquidity: 4, Audit: 0, Age: 3, Unclamped: 107},
		},
		{
			// 730 × 10⁹ does not fit in 32 bits: the 64-bit division path.
			name: "huge age weight",
			in:   RiskInputs{AuditScore: 100, AgeDays: 0},
			p:    func() obsqra.RiskParams { p := obsqra.DefaultRiskParams(); p.WAge = 1_000_000_000; return p }(),
			want: RiskScore{Score: 95, Age: 1_000_000_000, Unclamped: 1_000_000_000},
		},
		{
			name: "all weights zero, clampMin zero",
			in:   RiskInputs{UtilizationBps: 10000, VolatilityBps: 500, LiquidityTier: 3, AuditScore: 0, AgeDays: 0},
			p:    obsqra.RiskParams{AgeCapDays: 1},
			want: RiskScore{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ScoreRisk(tt.in, tt.p)
			if err != nil {
				t.Fatalf("ScoreRisk(%+v) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ScoreRisk(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
			m, err := NewModel(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := m.Score(tt.in); err != nil || got != tt.want {
				t.Errorf("Model.Score(%+v) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestScoreRiskRefusesOutOfRange(t *testing.T) {
	t.Parallel()
	ok := RiskInputs{UtilizationBps: 100, VolatilityBps: 100, LiquidityTier: 1, AuditScore: 90, AgeDays: 10}
	d := obsqra.DefaultRiskParams()
	tests := []struct {
		field string
		in    RiskInputs
		p     obsqra.RiskParams
	}{
		{"utilization", RiskInputs{UtilizationBps: 10001, AuditScore: 90}, d},
		{"utilization", RiskInputs{UtilizationBps: -1}, d},
		{"volatility", RiskInputs{VolatilityBps: 1_000_001}, d},
		{"liquidity", RiskInputs{LiquidityTier: 4}, d},
		{"liquidity", RiskInputs{LiquidityTier: -1}, d},
		{"auditScore", RiskInputs{AuditScore: 101}, d},
		{"ageDays", RiskInputs{AgeDays: 36501}, d},
		{"ageDays", RiskInputs{AgeDays: -3}, d},
		{"wAudit", ok, func() obsqra.RiskParams { p := d; p.WAudit = -1; return p }()},
		{"wLiquidity2", ok, func() obsqra.RiskParams { p := d; p.WLiquidity2 = -5; return p }()},
		{"ageCapDays", ok, func() obsqra.RiskParams { p := d; p.AgeCapDays = 0; return p }()},
		{"clampMax", ok, func() obsqra.RiskParams { p := d; p.ClampMax = 101; return p }()},
		{"clampMin", ok, func() obsqra.RiskParams { p := d; p.ClampMin = 96; return p }()},
		{"wVolatility", ok, func() obsqra.RiskParams { p := d; p.WVolatility = 1 << 40; return p }()},
	}
	for _, tt := range tests {
		_, err := ScoreRisk(tt.in, tt.p)
		if obsqra.ErrorCode(err) != obsqra.EINVALID || !strings.Contains(obsqra.ErrorMessage(err), tt.field) {
			t.Errorf("ScoreRisk(%+v, %+v) error = %v, want EINVALID naming %s", tt.in, tt.p, err, tt.field)
		}
		// The same refusal from a Model: at construction for parameters,
		// at scoring for inputs.
		if m, err := NewModel(tt.p); err != nil {
			if obsqra.ErrorCode(err) != obsqra.EINVALID || !strings.Contains(obsqra.ErrorMessage(err), tt.field) {
				t.Errorf("NewModel(%+v) error = %v, want EINVALID naming %s", tt.p, err, tt.field)
			}
		} else if _, err := m.Score(tt.in); obsqra.ErrorCode(err) != obsqra.EINVALID || !strings.Contains(obsqra.ErrorMessage(err), tt.field) {
			t.Errorf("Model.Score(%+v) error = %v, want EINVALID naming %s", tt.in, err, tt.field)
		}
	}
}

func TestParityAllocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		risks, apys []int64
		want        []int64
	}{
		{
			// s = 500×10000/31 = 161290, 800×10000/51 = 156862, 1200×10000/71 = 169014;
			// Σ = 487166; 161290×10000/487166 = 3310, 156862×10000/487166 = 3219; last 3471.
			name: "three protocols", risks: []int64{30, 50, 70}, apys: []int64{500, 800, 1200},
			want: []int64{3310, 3219, 3471},
		},
		{name: "zero total: the last gets everything", risks: []int64{10, 20, 30}, apys: []int64{0, 0, 0}, want: []int64{0, 0, 10000}},
		{name: "one protocol", risks: []int64{95}, apys: []int64{1}, want: []int64{10000}},
		{
			// s = 10000, 10000, 10000: each 3333, last 3334.
			name: "equal shares leave the remainder to the last", risks: []int64{0, 0, 0}, apys: []int64{1, 1, 1},
			want: []int64{3333, 3333, 3334},
		},
		{
			// s = 100×10000/1 = 1000000 and 1×10000/96 = 104; Σ = 1000104;
			// 1000000×10000/1000104 = 9998; last 2.
			name: "risk zero", risks: []int64{0, 95}, apys: []int64{100, 1}, want: []int64{9998, 2},
		},
	}
	for _, tt := range tests {
		got, err := ParityAllocation(tt.risks, tt.apys)
		if err != nil {
			t.Fatalf("%s: ParityAllocation error: %v", tt.name, err)
		}
		if !equalInts(got, tt.want) {
			t.Errorf("%s: ParityAllocation(%v, %v) = %v, want %v", tt.name, tt.risks, tt.apys, got, tt.want)
		}
	}
}

// TestParityAllocationMatchesBigIntegers checks the int64 arithmetic against
// arbitrary precision over random inputs up to the limits, so no product can
// have overflowed.
func TestParityAllocationMatchesBigIntegers(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + r.IntN(maxParityProtocols)
		if trial%2 == 0 {
			n = 1 + r.IntN(12)
		}
		risks, apys := make([]int64, n), make([]int64, n)
		for i := range risks {
			risks[i] = r.Int64N(maxParityRisk + 1)
			apys[i] = r.Int64N(maxParityAPY + 1)
			if trial%3 == 0 {
				risks[i], apys[i] = r.Int64N(3), maxParityAPY-r.Int64N(3)
			}
		}
		got, err := ParityAllocation(risks, apys)
		if err != nil {
			t.Fatal(err)
		}
		want := bigParity(risks, apys)
		var total int64
		for i := range got {
			if got[i] < 0 {
				t.Fatalf("weight %d is negative: %v", i, got)
			}
			total += got[i]
		}
		if total != 10000 || !equalInts(got, want) {
			t.Fatalf("ParityAllocation(n=%d) = %v (Σ %d), want %v", n, got, total, want)
		}
	}
}

func bigParity(risks, apys []int64) []int64 {
	n := len(risks)
	s := make([]*big.Int, n)
	total := new(big.Int)
	for i := range s {
		s[i] = new(big.Int).Mul(big.NewInt(apys[i]), big.NewInt(10000))
		s[i].Quo(s[i], big.NewInt(risks[i]+1))
		total.Add(total, s[i])
	}
	out := make([]int64, n)
	var assigned int64
	for i := 0; i < n-1; i++ {
		if total.Sign() != 0 {
			w := new(big.Int).Mul(s[i], big.NewInt(10000))
			out[i] = w.Quo(w, total).Int64()
		}
		assigned += out[i]
	}
	out[n-1] = 10000 - assigned
	return out
}

func TestParityAllocationRefusesBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		risks, apys []int64
		field       string
	}{
		{[]int64{1, 2}, []int64{1}, "apys"},
		{nil, nil, "risks"},
		{[]int64{-1}, []int64{1}, "risks[0]"},
		{[]int64{1, 1}, []int64{1, maxParityAPY + 1}, "apys[1]"},
		{make([]int64, maxParityProtocols+1), make([]int64, maxParityProtocols+1), "risks"},
	}
	for _, tt := range tests {
		_, err := ParityAllocation(tt.risks, tt.apys)
		var e *obsqra.Error
		if !errors.As(err, &e) || e.Code != obsqra.EINVALID || !strings.Contains(e.Message, tt.field) {
			t.Errorf("ParityAllocation(%v, %v) error = %v, want EINVALID naming %s", tt.risks, tt.apys, err, tt.field)
		}
	}
}

func TestCheckConstraints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		weights           []int64
		maxSingle, minDiv int64
		want              bool
	}{
		{[]int64{4000, 3000, 3000}, 4000, 3, true},
		{[]int64{4001, 2999, 3000}, 4000, 3, false},   // one above the cap
		{[]int64{5000, 4000, 999, 1}, 6000, 3, false}, // 999 does not count
		{[]int64{5000, 4000, 1000}, 6000, 3, true},    // 1000 counts
		{[]int64{10000}, 10000, 1, true},
		{[]int64{0, 0, 10000}, 5000, 1, false},
		{[]int64{2500, 2500, 2500, 2500}, 2500, 0, true},
	}
	for _, tt := range tests {
		if got := CheckConstraints(tt.weights, tt.maxSingle, tt.minDiv); got != tt.want {
			t.Errorf("CheckConstraints(%v, %d, %d) = %v, want %v", tt.weights, tt.maxSingle, tt.minDiv, got, tt.want)
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var benchScore RiskScore

func BenchmarkScoreRisk(b *testing.B) {
	in := RiskInputs{UtilizationBps: 8000, VolatilityBps: 2500, LiquidityTier: 1, AuditScore: 85, AgeDays: 365}
	p := obsqra.DefaultRiskParams()
	b.ReportAllocs()
	for b.Loop() {
		s, err := ScoreRisk(in, p)
		if err != nil {
			b.Fatal(err)
		}
		benchScore = s
	}
}

// BenchmarkModelScore is the hot path: parameters validated once, as
// market ingestion scores every sample with the same ones.
func BenchmarkModelScore(b *testing.B) {
	in := RiskInputs{UtilizationBps: 8000, VolatilityBps: 2500, LiquidityTier: 1, AuditScore: 85, AgeDays: 365}
	m, err := NewModel(obsqra.DefaultRiskParams())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := m.Score(in)
		if err != nil {
			b.Fatal(err)
		}
		benchScore = s
	}
}

func BenchmarkParityAllocation10(b *testing.B) {
	risks := []int64{30, 50, 70, 12, 44, 95, 5, 61, 23, 38}
	apys := []int64{500, 800, 1200, 310, 450, 2400, 120, 990, 400, 700}
	w := make([]int64, len(risks))
	b.ReportAllocs()
	for b.Loop() {
		parityAllocation(w, risks, apys)
	}
}
