package main

import (
	"math"
	"testing"
	"time"
)

func TestBucketRange(t *testing.T) {
	t.Parallel()
	tests := []uint64{
		0, 1, 255, 511, 512, 513, 1023, 1024, 1025, 4095, 4096,
		31_200_000, 74_000_000, 999_999_999, 1<<histMaxBits - 1,
	}
	for _, v := range tests {
		i := bucketOf(v)
		low, width := bucketRange(i)
		if v < low || v >= low+width {
			t.Errorf("bucketRange(bucketOf(%d) = %d) = [%d, %d), want it to hold %d", v, i, low, low+width, v)
		}
		if i < 0 || i >= histBuckets {
			t.Errorf("bucketOf(%d) = %d, want 0 <= i < %d", v, i, histBuckets)
		}
		if v >= 1<<histSubBits && float64(width)/float64(low) > 1.0/256 {
			t.Errorf("bucket of %d is %d wide from %d: over 1/256 of it", v, width, low)
		}
	}
	// The buckets tile the durations: each starts where the last ended.
	for i := 1; i < histBuckets; i++ {
		pl, pw := bucketRange(i - 1)
		if low, _ := bucketRange(i); low != pl+pw {
			t.Fatalf("bucketRange(%d) starts at %d, want %d (the end of bucket %d)", i, low, pl+pw, i-1)
		}
	}
	if got := bucketOf(1 << 50); got != histBuckets-1 {
		t.Errorf("bucketOf(2^50) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	// uniform returns from..to step by step.
	uniform := func(from, to, step time.Duration) []time.Duration {
		var out []time.Duration
		for d := from; d <= to; d += step {
			out = append(out, d)
		}
		return out
	}
	// repeat returns n copies of d.
	repeat := func(d time.Duration, n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = d
		}
		return out
	}
	tests := []struct {
		name      string
		latencies []time.Duration
		q         float64
		want      time.Duration
		// tolerance is the relative error allowed: the bucket's.
		tolerance float64
	}{
		{"empty", nil, 0.5, 0, 0},
		{"one latency is exact", []time.Duration{31200 * time.Microsecond}, 0.99, 31200 * time.Microsecond, 0},
		{"one latency at p50", []time.Duration{74 * time.Millisecond}, 0.5, 74 * time.Millisecond, 0},
		{"small values are exact p50", uniform(1, 100, 1), 0.5, 50, 0},
		{"small values are exact p99", uniform(1, 100, 1), 0.99, 99, 0},
		{"uniform p50", uniform(time.Microsecond, 10*time.Millisecond, time.Microsecond), 0.5, 5 * time.Millisecond, 0.002},
		{"uniform p99", uniform(time.Microsecond, 10*time.Millisecond, time.Microsecond), 0.99, 9900 * time.Microsecond, 0.002},
		{"uniform p0 is the smallest", uniform(time.Microsecond, 10*time.Millisecond, time.Microsecond), 0, time.Microsecond, 0},
		{"uniform p100 is the largest", uniform(time.Microsecond, 10*time.Millisecond, time.Microsecond), 1, 10 * time.Millisecond, 0},
		{"a slow tail past p99", append(repeat(time.Millisecond, 990), repeat(100*time.Millisecond, 10)...), 0.99, time.Millisecond, 0.002},
		{"a slow tail at p99.5", append(repeat(time.Millisecond, 990), repeat(100*time.Millisecond, 10)...), 0.995, 100 * time.Millisecond, 0.002},
		{"negative counts as zero", []time.Duration{-5}, 0.5, 0, 0},
		{"beyond the range", []time.Duration{time.Hour, time.Hour}, 0.5, time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := new(hist)
			for _, d := range tt.latencies {
				h.record(d)
			}
			got := h.quantile(tt.q)
			if diff := math.Abs(float64(got - tt.want)); diff > tt.tolerance*float64(tt.want) {
				t.Errorf("quantile(%v) of %d latencies = %v, want %v (within %.1f %%)", tt.q, len(tt.latencies), got, tt.want, 100*tt.tolerance)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b []time.Duration
	}{
		{"both empty", nil, nil},
		{"into empty", nil, []time.Duration{3 * time.Millisecond, 7 * time.Millisecond}},
		{"from empty", []time.Duration{3 * time.Millisecond}, nil},
		{"interleaved", []time.Duration{time.Millisecond, 9 * time.Millisecond}, []time.Duration{2 * time.Millisecond, 40 * time.Millisecond, 5 * time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b, all := new(hist), new(hist), new(hist)
			for _, d := range tt.a {
				a.record(d)
				all.record(d)
			}
			for _, d := range tt.b {
				b.record(d)
				all.record(d)
			}
			a.merge(b)
			if a.count() != all.count() || a.min != all.min || a.max != all.max {
				t.Errorf("merge: count, min, max = %d, %v, %v, want %d, %v, %v", a.count(), a.min, a.max, all.count(), all.min, all.max)
			}
			for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
				if got, want := a.quantile(q), all.quantile(q); got != want {
					t.Errorf("merged quantile(%v) = %v, want %v", q, got, want)
				}
			}
		})
	}
}
