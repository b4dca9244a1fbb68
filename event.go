package obsqra

import (
	"encoding/json"
	"time"
)

// Event is one row of the transactional outbox: a change as of the commit
// that made it. Events are appended in the same unit of work as the change
// and read back in id order by the live fan-out (and by subscribers resuming
// from a cursor).
type Event struct {
	// ID grows with commit order: a reader that remembers the last id it saw
	// never skips an event.
	ID int64
	// Topic names what happened, e.g. "user.updated".
	Topic string
	// OwnerID is the user who may see the event, or 0 for a public event.
	OwnerID int64
	// Payload is the event's JSON object as of the commit.
	Payload json.RawMessage
	// CreatedAt is when the event was appended.
	CreatedAt time.Time
}
