package ledger

import (
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

func TestFeeAmount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"0x0", "0"},
		{"0x2386f26fc10000", "10000000000000000"},
		{"0X2386F26FC10000", "10000000000000000"},
		{"21000000000000", "21000000000000"},
		{"0x800000000000011000000000000000000000000000000000000000000000001", ""}, // the prime: not a felt
		{"-5", ""},
		{"1.5", ""},
		{"0xzz", ""},
		{"", ""},
	} {
		got, err := feeAmount(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("feeAmount(%q) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("feeAmount(%q) = %s, %v, want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestFinality(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want obsqra.TxStatus
		ok   bool
	}{
		{"RECEIVED", obsqra.TxReceived, true},
		{"CANDIDATE", obsqra.TxCandidate, true},
		{"PRE_CONFIRMED", obsqra.TxPreConfirmed, true},
		{"ACCEPTED_ON_L2", obsqra.TxAcceptedOnL2, true},
		{"ACCEPTED_ON_L1", obsqra.TxAcceptedOnL1, true},
		{"REJECTED", obsqra.TxDropped, true},
		{"PENDING", "", false}, // ours, never a node's
		{"DROPPED", "", false},
		{"accepted_on_l2", "", false},
		{"", "", false},
	} {
		if got, ok := finality(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("finality(%q) = %q, %v, want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNextCheck(t *testing.T) {
	t.Parallel()
	created := time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)
	s := New(nil, nil, Config{})
	slow := New(nil, nil, Config{WatchInterval: 20 * time.Minute})
	pending := &obsqra.WatchedTransaction{Transaction: obsqra.Transaction{CreatedAt: created, Status: obsqra.TxPending}}
	received := &obsqra.WatchedTransaction{Transaction: obsqra.Transaction{CreatedAt: created, Status: obsqra.TxReceived}}
	since := created.Add(2 * time.Hour)
	for _, tc := range []struct {
		name          string
		s             *Service
		w             *obsqra.WatchedTransaction
		age           time.Duration
		notFoundSince *time.Time
		want          time.Duration
	}{
		{"new", s, received, 0, nil, 15 * time.Second},
		{"59 minutes", s, received, 59 * time.Minute, nil, 15 * time.Second},
		{"1 hour", s, received, time.Hour, nil, 30 * time.Second},
		{"2 hours", s, received, 2 * time.Hour, nil, time.Minute},
		{"5 hours", s, received, 5 * time.Hour, nil, 8 * time.Minute},
		{"6 hours: capped", s, received, 6 * time.Hour, nil, 10 * time.Minute},
		{"a year: capped", s, received, 365 * 24 * time.Hour, nil, 10 * time.Minute},
		{"interval above the cap", slow, received, 10 * time.Hour, nil, 20 * time.Minute},
		{"never seen, before the drop", s, pending, 29*time.Minute + 50*time.Second, &created, 10 * time.Second},
		{"never seen, long before the drop", s, pending, time.Minute, &created, 15 * time.Second},
		{"lost, before the drop", s, received, 2*time.Hour + 29*time.Minute + 59*time.Second, &since, time.Second},
	} {
		now := created.Add(tc.age)
		if got := tc.s.nextCheck(tc.w, now, tc.notFoundSince).Sub(now); got != tc.want {
			t.Errorf("%s: nextCheck in %v, want %v", tc.name, got, tc.want)
		}
	}
}
