package ml

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/obsqra/obsqra"
)

func TestRoundBps(t *testing.T) {
	t.Parallel()
	rep := func(v float64, k int) []float64 {
		out := make([]float64, k)
		for i := range out {
			out[i] = v
		}
		return out
	}
	repInt := func(v, k int) []int {
		out := make([]int, k)
		for i := range out {
			out[i] = v
		}
		return out
	}
	tests := []struct {
		name         string
		w            []float64
		lower, upper []int
		want         []int
	}{
		{"exact", []float64{0.25, 0.5, 0.25}, nil, nil, []int{2500, 5000, 2500}},
		{"equal remainders go to the lower index", rep(1.0/3, 3), nil, nil, []int{3334, 3333, 3333}},
		{"largest remainder wins", []float64{0.33334, 0.33333, 0.33333}, nil, nil, []int{3334, 3333, 3333}},
		{
			"0.1+0.2 at a cap of 3000",
			[]float64{0.1 + 0.2, 0.3, 0.39999999999999997},
			nil, []int{3000, 3000, 4000},
			[]int{3000, 3000, 4000},
		},
		{
			// x₀ = 2999.9999999999995 has the largest remainder and takes
			// the missing unit, landing exactly on its cap.
			"at the cap from below with the largest remainder",
			[]float64{0.29999999999999993, 0.35000000000000003, 0.35000000000000003},
			nil, []int{3000, 3500, 3500},
			[]int{3000, 3500, 3500},
		},
		{
			// x₀ = 3000.0000000000005 is clamped to its cap; without the
			// clamp it would floor to 3000 anyway, but never exceed it.
			"above the cap by rounding",
			[]float64{0.30000000000000004, 0.35, 0.35},
			[]int{0, 0, 0}, []int{3000, 5000, 5000},
			[]int{3000, 3500, 3500},
		},
		{"tiny negative", []float64{-1e-17, 0.5, 0.5 + 1e-17}, nil, nil, []int{0, 5000, 5000}},
		{
			"floors of the diversified support",
			[]float64{0.09999999999999999, 0.1, 0.8000000000000002},
			[]int{1000, 1000, 0}, []int{8000, 8000, 8000},
			[]int{1000, 1000, 8000},
		},
		{
			// Protocol 0 sits exactly on its cap; the unit goes to the first
			// of the two half remainders.
			"half remainders beside a weight at its cap",
			[]float64{0.3333, 0.33335, 0.33335},
			nil, []int{3333, 3334, 3334},
			[]int{3333, 3334, 3333},
		},
		{
			"48 equal thirds-type splits",
			rep(1.0/48, 48), nil, nil,
			append(repInt(209, 16), repInt(208, 32)...),
		},
		{"one protocol", []float64{1}, nil, nil, []int{10000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := RoundBps(tt.w, 10000, tt.lower, tt.upper)
			if err != nil {
				t.Fatalf("RoundBps(%v) error %v", tt.w, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("RoundBps(%v) = %v, want %v", tt.w, got, tt.want)
			}
		})
	}
}

func TestRoundBpsProperties(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(15, 16))
	for trial := 0; trial < 5000; trial++ {
		n := 1 + rng.IntN(50)
		total := []int{10000, 10000, 100, 7, 1_000_000}[rng.IntN(5)]
		w := make([]float64, n)
		var sum float64
		for i := range w {
			switch rng.IntN(4) {
			case 0:
				w[i] = 0
			case 1:
				w[i] = 1 // equal weights after normalisation
			default:
				w[i] = rng.Float64()
			}
			sum += w[i]
		}
		if sum == 0 {
			w[0], sum = 1, 1
		}
		for i := range w {
			w[i] /= sum
		}
		// Integer bounds that the scaled weights respect: floor − slack to
		// ceil + slack, sometimes tight on both sides.
		lower, upper := make([]int, n), make([]int, n)
		for i := range w {
			x := w[i] * float64(total)
			lower[i] = max(0, int(math.Floor(x))-rng.IntN(2))
			upper[i] = int(math.Ceil(x)) + rng.IntN(2)
		}
		var sl, su int
		for i := range lower {
			sl += lower[i]
			su += upper[i]
		}
		if sl > total || su < total {
			continue
		}
		got, err := RoundBps(w, total, lower, upper)
		if err != nil {
			t.Fatalf("trial %d: RoundBps(%v, %d) error %v", trial, w, total, err)
		}
		again, _ := RoundBps(w, total, lower, upper)
		if !slices.Equal(got, again) {
			t.Fatalf("trial %d: RoundBps not deterministic: %v then %v", trial, got, again)
		}
		var s int
		for i, v := range got {
			s += v
			x := w[i] * float64(total)
			if v < lower[i] || v > upper[i] {
				t.Errorf("trial %d: RoundBps[%d] = %d, want within [%d, %d]", trial, i, v, lower[i], upper[i])
			}
			if math.Abs(float64(v)-x) > 1+1e-9 {
				t.Errorf("trial %d: RoundBps[%d] = %d, want within 1 of %v", trial, i, v, x)
			}
		}
		if s != total {
			t.Errorf("trial %d: RoundBps sums to %d, want %d", trial, s, total)
		}
		// Largest remainder: a unit added above the floor never went to a
		// smaller remainder while a larger one with room was passed over.
		for i := range got {
			xi := math.Min(math.Max(w[i]*float64(total), float64(lower[i])), float64(upper[i]))
			fi := xi - math.Floor(xi)
			up := float64(got[i]) > math.Floor(xi)
			for j := range got {
				xj := math.Min(math.Max(w[j]*float64(total), float64(lower[j])), float64(upper[j]))
				fj := xj - math.Floor(xj)
				if up && float64(got[j]) == math.Floor(xj) && got[j] < upper[j] && (fj > fi || (fj == fi && j < i)) {
					t.Errorf("trial %d: unit went to %d (remainder %v) before %d (remainder %v)", trial, i, fi, j, fj)
				}
			}
		}
		if t.Failed() {
			t.Fatalf("trial %d: w = %v lower = %v upper = %v got %v", trial, w, lower, upper, got)
		}
	}
}

func TestRoundBpsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		w            []float64
		total        int
		lower, upper []int
	}{
		{"empty", nil, 10000, nil, nil},
		{"zero total", []float64{1}, 0, nil, nil},
		{"NaN", []float64{math.NaN(), 1}, 10000, nil, nil},
		{"sum below one", []float64{0.5, 0.4}, 10000, nil, nil},
		{"lower length", []float64{0.5, 0.5}, 10000, []int{0}, nil},
		{"upper length", []float64{0.5, 0.5}, 10000, nil, []int{10000}},
		{"lower above upper", []float64{0.5, 0.5}, 10000, []int{6000, 0}, []int{5000, 10000}},
		{"floors above total", []float64{0.5, 0.5}, 10000, []int{6000, 6000}, nil},
		{"caps below total", []float64{0.5, 0.5}, 10000, nil, []int{4000, 5000}},
		{"weight above its cap", []float64{0.31, 0.69}, 10000, nil, []int{3000, 10000}},
		{"weight below its floor", []float64{0.05, 0.95}, 10000, []int{1000, 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := RoundBps(tt.w, tt.total, tt.lower, tt.upper); obsqra.ErrorCode(err) != obsqra.EINVALID {
				t.Errorf("RoundBps(%s) error = %v, want %s", tt.name, err, obsqra.EINVALID)
			}
		})
	}
}
