package obsqra_test

import (
	"encoding/base64"
	"testing"

	"github.com/obsqra/obsqra"
)

func TestNodeIDRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []int64{1, 42, 1 << 62} {
		s := obsqra.NodeID(obsqra.NodeUser, id)
		typ, got, err := obsqra.ParseNodeID(s)
		if err != nil || typ != obsqra.NodeUser || got != id {
			t.Errorf("ParseNodeID(NodeID(User, %d)) = %s, %d, %v", id, typ, got, err)
		}
		if _, err := obsqra.ParseNodeIDOf("Protocol", s); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("ParseNodeIDOf(Protocol, user id) error = %v, want EINVALID", err)
		}
	}
	for _, bad := range []string{"", "!!", "VXNlcg", "VXNlcjo", "VXNlcjot MQ", "VXNlcjowCg", "OjE"} {
		if _, _, err := obsqra.ParseNodeID(bad); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("ParseNodeID(%q) error = %v, want EINVALID", bad, err)
		}
	}
}

func TestDashboardNodeIDRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		user   int64
		window int
	}{{1, 7}, {42, 365}, {1 << 62, 1}} {
		s := obsqra.DashboardNodeID(c.user, c.window)
		user, window, err := obsqra.ParseDashboardNodeID(s)
		if err != nil || user != c.user || window != c.window {
			t.Errorf("ParseDashboardNodeID(DashboardNodeID(%d, %d)) = %d, %d, %v", c.user, c.window, user, window, err)
		}
		if _, _, err := obsqra.ParseNodeID(s); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("ParseNodeID(dashboard id) error = %v, want EINVALID", err)
		}
	}
	if a, b := obsqra.DashboardNodeID(1, 7), obsqra.DashboardNodeID(1, 30); a == b {
		t.Errorf("DashboardNodeID(1, 7) = DashboardNodeID(1, 30) = %s", a)
	}
	if a, b := obsqra.DashboardNodeID(1, 7), obsqra.DashboardNodeID(2, 7); a == b {
		t.Errorf("DashboardNodeID(1, 7) = DashboardNodeID(2, 7) = %s", a)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, bad := range []string{
		obsqra.NodeID(obsqra.NodeUser, 1), obsqra.NodeID(obsqra.NodeDashboard, 1), enc("Dashboard:1:0"), enc("Dashboard:0:7"),
		enc("Dashboard:1:-7"), enc("Dashboard:1:7:8"), enc("Dashboard:x:7"), enc("Dashboard:1:99999999999"), "!!",
	} {
		if _, _, err := obsqra.ParseDashboardNodeID(bad); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("ParseDashboardNodeID(%q) error = %v, want EINVALID", bad, err)
		}
	}
}
