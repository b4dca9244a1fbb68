package ml

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/obsqra/obsqra"
)

func TestLedoitWolfHandComputed(t *testing.T) {
	t.Parallel()
	// Centred: a = 100·(−1, 0, 1), b = 100·(−1, −1, 2). In units of 100²:
	// S = [[2/3, 1], [1, 2]], m = 4/3, d² = ((2/3)² + 1 + 1 + (2/3)²)/2 =
	// 13/9; ‖x_k x_kᵀ − S‖² over the days = 10/9 + 31/9 + 55/9 = 32/3, so
	// b̄² = (32/3)/2/3² = 16/27 < d², δ = (16/27)/(13/9) = 16/39 and
	// Σ* = (64/117)·I + (23/39)·S = [[110, 69], [69, 202]]/117.
	hist := [][]float64{{500, 600, 700}, {800, 800, 1100}}
	got, delta, err := LedoitWolf(hist)
	if err != nil {
		t.Fatalf("LedoitWolf error %v", err)
	}
	if want := 16.0 / 39; math.Abs(delta-want) > 1e-15 {
		t.Errorf("LedoitWolf shrinkage = %v, want %v", delta, want)
	}
	want := [][]float64{{110, 69}, {69, 202}}
	for i := range want {
		for j := range want[i] {
			w := want[i][j] / 117 * 1e4
			if g := got.At(i, j); math.Abs(g-w) > 1e-9 {
				t.Errorf("LedoitWolf[%d][%d] = %v, want %v", i, j, g, w)
			}
		}
	}
}

// lwtReference recomputes the estimator another way: S with gonum, and
// Σ_k ‖x_k x_kᵀ − S‖²_F = Σ_k ‖x_k‖⁴ − T·‖S‖²_F.
func lwtReference(hist [][]float64) (*mat.SymDense, float64) {
	p, t := len(hist), len(hist[0])
	x := mat.NewDense(t, p, nil)
	for i, h := range hist {
		var mean float64
		for _, v := range h {
			mean += v / float64(t)
		}
		for k, v := range h {
			x.Set(k, i, v-mean)
		}
	}
	s := mat.NewSymDense(p, nil)
	s.SymOuterK(1/float64(t), x.T())
	m := mat.Trace(s) / float64(p)
	var d2, sF2 float64
	for i := 0; i < p; i++ {
		for j := 0; j < p; j++ {
			v := s.At(i, j)
			sF2 += v * v
			if i == j {
				v -= m
			}
			d2 += v * v
		}
	}
	d2 /= float64(p)
	var x4 float64
	for k := 0; k < t; k++ {
		r := mat.Norm(x.RowView(k), 2)
		x4 += r * r * r * r
	}
	b2 := (x4 - float64(t)*sF2) / float64(p) / float64(t*t)
	delta := 0.0
	if d2 > 0 {
		delta = math.Min(b2, d2) / d2
	}
	out := mat.NewSymDense(p, nil)
	for i := 0; i < p; i++ {
		for j := i; j < p; j++ {
			v := (1 - delta) * s.At(i, j)
			if i == j {
				v += delta * m
			}
			out.SetSym(i, j, v)
		}
	}
	return out, delta
}

func TestLedoitWolfProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 200; trial++ {
		p := 1 + rng.IntN(12)
		T := 2 + rng.IntN(60)
		hist := make([][]float64, p)
		common := make([]float64, T)
		for k := range common {
			common[k] = rng.NormFloat64() * 100
		}
		for i := range hist {
			hist[i] = make([]float64, T)
			level, sd := 200+1500*rng.Float64(), 300*rng.Float64()
			for k := range hist[i] {
				hist[i][k] = level + 0.5*common[k] + sd*rng.NormFloat64()
			}
		}
		switch rng.IntN(4) {
		case 0: // identical columns
			if p > 1 {
				copy(hist[1], hist[0])
			}
		case 1: // a constant series
			for k := range hist[0] {
				hist[0][k] = 750
			}
		}
		got, delta, err := LedoitWolf(hist)
		if err != nil {
			t.Fatalf("trial %d: LedoitWolf error %v", trial, err)
		}
		if !(delta >= 0 && delta <= 1) {
			t.Errorf("trial %d: shrinkage = %v, want in [0, 1]", trial, delta)
		}
		ref, refDelta := lwtReference(hist)
		if math.Abs(delta-refDelta) > 1e-9 {
			t.Errorf("trial %d: shrinkage = %v, reference %v", trial, delta, refDelta)
		}
		var big float64
		for i := 0; i < p; i++ {
			for j := 0; j < p; j++ {
				v := got.At(i, j)
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("trial %d: LedoitWolf[%d][%d] = %v", trial, i, j, v)
				}
				big = math.Max(big, math.Abs(v))
			}
		}
		if !mat.EqualApprox(got, ref, 1e-9*(1+big)) {
			t.Errorf("trial %d: LedoitWolf = %v, reference %v", trial, mat.Formatted(got), mat.Formatted(ref))
		}
		var eig mat.EigenSym
		if !eig.Factorize(got, false) {
			t.Fatalf("trial %d: eigen decomposition failed", trial)
		}
		if v := eig.Values(nil); v[0] < -1e-9*(1+big) {
			t.Errorf("trial %d: smallest eigenvalue %v < 0", trial, v[0])
		}
	}
}

func TestLedoitWolfDegenerate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		hist      [][]float64
		want      [][]float64
		wantDelta float64
	}{
		{"all constant", [][]float64{{500, 500, 500}, {300, 300, 300}}, [][]float64{{0, 0}, {0, 0}}, 0},
		{"one protocol", [][]float64{{100, 300}}, [][]float64{{10000}}, 0},
		// S = 10000·[[1, 1], [1, 1]], m = 10000, d² = 10000², b̄² = 0 since
		// every x_k x_kᵀ equals S: no shrinkage, and Σ* = S (singular).
		{"identical pair, two days", [][]float64{{100, 300}, {100, 300}}, [][]float64{{10000, 10000}, {10000, 10000}}, 0},
		// One constant series next to a varying one: S = diag(0, 10000),
		// m = 5000, d² = 5000², b̄² = 0 again.
		{"constant beside varying", [][]float64{{700, 700}, {100, 300}}, [][]float64{{0, 0}, {0, 10000}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, delta, err := LedoitWolf(tt.hist)
			if err != nil {
				t.Fatalf("LedoitWolf(%s) error %v", tt.name, err)
			}
			if delta != tt.wantDelta {
				t.Errorf("LedoitWolf(%s) shrinkage = %v, want %v", tt.name, delta, tt.wantDelta)
			}
			for i := range tt.want {
				for j := range tt.want[i] {
					if g := got.At(i, j); math.Abs(g-tt.want[i][j]) > 1e-9 {
						t.Errorf("LedoitWolf(%s)[%d][%d] = %v, want %v", tt.name, i, j, g, tt.want[i][j])
					}
				}
			}
		})
	}
	// Identical series over more days do shrink, and the result is then
	// positive definite.
	a := []float64{500, 520, 480, 510, 530, 470}
	got, delta, err := LedoitWolf([][]float64{a, a, {600, 610, 590, 605, 600, 595}})
	if err != nil {
		t.Fatal(err)
	}
	var chol mat.Cholesky
	if delta <= 0 || !chol.Factorize(got) {
		t.Errorf("LedoitWolf(identical pair) shrinkage = %v, want > 0 and a positive definite result", delta)
	}
}

func TestLedoitWolfShrinkageVanishesWithData(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 14))
	hist := make([][]float64, 3)
	sd := []float64{50, 150, 300}
	for i := range hist {
		hist[i] = make([]float64, 20000)
		for k := range hist[i] {
			hist[i][k] = 1000 + sd[i]*rng.NormFloat64()
		}
	}
	got, delta, err := LedoitWolf(hist)
	if err != nil {
		t.Fatal(err)
	}
	if delta > 0.01 {
		t.Errorf("LedoitWolf(20000 days) shrinkage = %v, want < 0.01", delta)
	}
	for i, s := range sd {
		if v := got.At(i, i); math.Abs(v-s*s)/(s*s) > 0.05 {
			t.Errorf("LedoitWolf(20000 days)[%d][%d] = %v, want %v within 5%%", i, i, v, s*s)
		}
	}
}

func TestLedoitWolfInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hist [][]float64
	}{
		{"empty", nil},
		{"one day", [][]float64{{1}, {2}}},
		{"ragged", [][]float64{{1, 2, 3}, {1, 2}}},
		{"NaN", [][]float64{{1, math.NaN()}, {1, 2}}},
		{"Inf", [][]float64{{1, 2}, {math.Inf(-1), 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := LedoitWolf(tt.hist); obsqra.ErrorCode(err) != obsqra.EINVALID {
				t.Errorf("LedoitWolf(%s) error = %v, want %s", tt.name, err, obsqra.EINVALID)
			}
		})
	}
}
