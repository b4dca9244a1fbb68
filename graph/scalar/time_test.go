package scalar_test

import (
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph/scalar"
)

func marshal(m graphql.Marshaler) string {
	var b strings.Builder
	m.MarshalGQL(&b)
	return b.String()
}

// TestMarshalTime: responses keep the format gqlgen's graphql.MarshalTime
// gave them.
func TestMarshalTime(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{
		{},
		time.Date(2026, 11, 25, 19, 40, 0, 0, time.UTC),
		time.Date(2026, 11, 25, 19, 40, 0, 123456000, time.UTC),
		time.Date(2026, 11, 25, 19, 40, 0, 1, time.FixedZone("", -3*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		if got, want := marshal(scalar.MarshalTime(tm)), marshal(graphql.MarshalTime(tm)); got != want {
			t.Errorf("MarshalTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestUnmarshalTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want time.Time // zero when in must be refused
	}{
		{"2026-11-25T19:40:00Z", time.Date(2026, 11, 25, 19, 40, 0, 0, time.UTC)},
		{"2026-11-25T19:40:00.123456789Z", time.Date(2026, 11, 25, 19, 40, 0, 123456789, time.UTC)},
		{"2026-11-25T21:40:00+02:00", time.Date(2026, 11, 25, 19, 40, 0, 0, time.UTC)},
		{"1970-01-01T00:00:00Z", time.Unix(0, 0).UTC()},
		{"9999-12-31T23:59:59.999999999Z", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"1970-01-01T00:59:59+01:00", time.Time{}},
		{"1969-12-31T23:59:59Z", time.Time{}},
		{"0000-01-01T00:00:00Z", time.Time{}},
		{"9999-12-31T23:00:00-05:00", time.Time{}},
		{"yesterday", time.Time{}},
		{"2024-13-01T00:00:00Z", time.Time{}},
		{"2024-02-30T00:00:00Z", time.Time{}},
		{"2024-01-01", time.Time{}},
		{"2024-01-01 00:00:00", time.Time{}},
		{"2024-01-01T00:00:00", time.Time{}},
		{"", time.Time{}},
		{nil, time.Time{}},
		{1700000000, time.Time{}},
		{true, time.Time{}},
	}
	for _, tt := range tests {
		got, err := scalar.UnmarshalTime(tt.in)
		if tt.want.IsZero() {
			if obsqra.ErrorCode(err) != obsqra.EINVALID {
				t.Errorf("UnmarshalTime(%#v) = %v, %v; want EINVALID", tt.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("UnmarshalTime(%#v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	// A long input is cut in the message.
	_, err := scalar.UnmarshalTime(strings.Repeat("é", 5000))
	if msg := obsqra.ErrorMessage(err); len(msg) > 200 || !strings.Contains(msg, "…") {
		t.Errorf("UnmarshalTime(10,000 bytes) message = %q, want it cut", msg)
	}
}
