package obsqra_test

import (
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := obsqra.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{attempt: 1, rnd: 0, want: 50 * time.Millisecond},
		{attempt: 1, rnd: 0.5, want: 75 * time.Millisecond},
		{attempt: 1, rnd: 0.999, want: 99_950 * time.Microsecond},
		{attempt: 2, rnd: 0, want: 100 * time.Millisecond},
		{attempt: 3, rnd: 0.5, want: 300 * time.Millisecond},
		{attempt: 4, rnd: 0, want: 400 * time.Millisecond},
		{attempt: 5, rnd: 0, want: 500 * time.Millisecond},   // 1.6 s capped at Max
		{attempt: 5, rnd: 0.5, want: 750 * time.Millisecond}, // the cap is jittered too
		{attempt: 33, rnd: 0, want: 500 * time.Millisecond},  // past 32 doublings
		{attempt: 1000, rnd: 0.5, want: 750 * time.Millisecond},
		{attempt: 0, rnd: 0, want: 50 * time.Millisecond}, // counts as the first
		{attempt: -3, rnd: 0, want: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := b.Delay(tt.attempt, func() float64 { return tt.rnd }); got != tt.want {
			t.Errorf("Delay(%d) with rnd %v = %s, want %s", tt.attempt, tt.rnd, got, tt.want)
		}
	}
	// A shift that overflows int64 gives up on doubling: the cap.
	huge := obsqra.Backoff{Base: time.Duration(1) << 62, Max: time.Hour}
	if got := huge.Delay(3, func() float64 { return 0 }); got != 30*time.Minute {
		t.Errorf("Delay(3) of Base 1<<62 = %s, want %s", got, 30*time.Minute)
	}
	// Without a Base every wait is Max's.
	if got := (obsqra.Backoff{Max: time.Second}).Delay(1, func() float64 { return 0 }); got != 500*time.Millisecond {
		t.Errorf("Delay(1) without Base = %s, want %s", got, 500*time.Millisecond)
	}
}
