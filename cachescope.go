package obsqra

// CacheScope says what a field's value depends on, for the read cache that
// keeps whole answers until the events that can change them arrive: a
// document whose every field has a scope may be answered again from one
// encoding, and the widest scope among its fields says which events end
// that encoding's life. A field without a scope (the zero value) makes
// its document uncacheable: its value may change without an event (a
// clock finer than a day, another table), or it is cheap, rare or private
// enough not to be worth it.
type CacheScope uint8

const (
	// CacheNever is the zero scope: not cacheable.
	CacheNever CacheScope = iota
	// CachePublic is a value that changes only with public events (those
	// with no owner: market data, market forecasts, the market's
	// reference data) and with the UTC day.
	CachePublic
	// CacheViewer is a value of the signed-in viewer's own: it changes
	// also with the viewer's own events (OwnerID) and with the viewer's
	// account row (read again for every request).
	CacheViewer
)
