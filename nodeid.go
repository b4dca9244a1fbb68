package obsqra

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Node types that have global ids.
const (
	NodeUser          = "User"
	NodeProtocol      = "Protocol"
	NodeMetricsSample = "MetricsSample"
	NodeRiskScore     = "RiskScore"
	NodeDecision      = "Decision"
	NodePrediction    = "Prediction"
	NodeAllocation    = "Allocation"
	NodeTransaction   = "Transaction"
	// NodeRebalanceSuggestion shares its number with the suggestion's
	// Prediction.
	NodeRebalanceSuggestion = "RebalanceSuggestion"
)

// NodeID returns the opaque global id of the object of type typ with
// database id id, e.g. NodeID("User", 42). It is the only place global ids
// are made.
func NodeID(typ string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + strconv.FormatInt(id, 10)))
}

// ParseNodeID decodes a global id made by NodeID. A malformed id is EINVALID.
func ParseNodeID(s string) (typ string, id int64, err error) {
	if len(s) > 200 {
		return "", 0, Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	raw, decErr := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if decErr != nil {
		return "", 0, Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	typ, num, ok := strings.Cut(string(raw), ":")
	if !ok || typ == "" {
		return "", 0, Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	id, convErr := strconv.ParseInt(num, 10, 64)
	if convErr != nil || id <= 0 {
		return "", 0, Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	return typ, id, nil
}

// ParseNodeIDOf decodes a global id that must denote an object of type typ.
func ParseNodeIDOf(typ, s string) (int64, error) {
	got, id, err := ParseNodeID(s)
	if err != nil {
		return 0, err
	}
	if got != typ {
		return 0, Errorf(EINVALID, "%s is not the id of a %s", QuoteInput(s), typ)
	}
	return id, nil
}

// Node is an object a client can refetch by its global id.
type Node interface {
	NodeID() string
}
