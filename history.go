package obsqra

import "time"

// HistoryPage selects a page of a history (a protocol's metrics or risk
// scores), newest first.
type HistoryPage struct {
	// First is the page size; the query returns up to First+1 rows so the
	// caller knows whether there is a next page.
	First int
	// After, when set, continues after this row.
	After *HistoryKey
	// From and To, when set, bound the observation time (both inclusive).
	From, To *time.Time
}

// HistoryKey is a history row's position in a newest-first walk: its time
// (observation or creation) and id.
type HistoryKey struct {
	At time.Time
	ID int64
}
