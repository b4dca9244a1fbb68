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
	// NodeSignedConstraints is a constraint set a user's wallet signed.
	NodeSignedConstraints = "SignedConstraints"
	// NodeRebalanceSuggestion shares its number with the suggestion's
	// Prediction.
	NodeRebalanceSuggestion = "RebalanceSuggestion"
	// NodeOptimizationRun shares its number with the Prediction that
	// records the run: the type keeps the two ids apart.
	NodeOptimizationRun = "OptimizationRun"
	// NodeDashboard is keyed by its user and window, not by one number:
	// see DashboardNodeID.
	NodeDashboard = "Dashboard"
)

// NodeID returns the opaque global id of the object of type typ with
// database id id, e.g. NodeID("User", 42). It is the only place global ids
// are made.
func NodeID(typ string, id int64) string {
	return encodeNodeID(typ, strconv.FormatInt(id, 10))
}

// DashboardNodeID returns the global id of the dashboard of the user with
// database id userID over the last windowDays: a dashboard is not stored,
// but it is the same object for the same user and window, so a client's
// cache updates the dashboard it holds with each dashboardUpdated.
func DashboardNodeID(userID int64, windowDays int) string {
	return encodeNodeID(NodeDashboard, strconv.FormatInt(userID, 10)+":"+strconv.Itoa(windowDays))
}

// encodeNodeID is base64url (no padding) of "typ:key".
func encodeNodeID(typ, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + key))
}

// decodeNodeID splits a global id into its type and key. A malformed id is
// EINVALID.
func decodeNodeID(s string) (typ, key string, err error) {
	if len(s) > 200 {
		return "", "", Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	raw, decErr := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if decErr != nil {
		return "", "", Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	typ, key, ok := strings.Cut(string(raw), ":")
	if !ok || typ == "" {
		return "", "", Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	return typ, key, nil
}

// positive parses a decimal number above 0, or reports false.
func positive(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// ParseNodeID decodes a global id made by NodeID. A malformed id is
// EINVALID, and so is a dashboard's (see ParseDashboardNodeID).
func ParseNodeID(s string) (typ string, id int64, err error) {
	typ, key, err := decodeNodeID(s)
	if err != nil {
		return "", 0, err
	}
	id, ok := positive(key)
	if !ok {
		return "", 0, Errorf(EINVALID, "%s is not a valid id", QuoteInput(s))
	}
	return typ, id, nil
}

// ParseDashboardNodeID decodes a global id made by DashboardNodeID. Any
// other id is EINVALID.
func ParseDashboardNodeID(s string) (userID int64, windowDays int, err error) {
	typ, key, err := decodeNodeID(s)
	if err != nil {
		return 0, 0, err
	}
	user, window, _ := strings.Cut(key, ":")
	userID, okUser := positive(user)
	w, okWindow := positive(window)
	if typ != NodeDashboard || !okUser || !okWindow || w > 1<<20 {
		return 0, 0, Errorf(EINVALID, "%s is not the id of a %s", QuoteInput(s), NodeDashboard)
	}
	return userID, int(w), nil
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
