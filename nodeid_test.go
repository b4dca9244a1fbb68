package obsqra_test

import (
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
