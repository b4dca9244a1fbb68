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

// TopicAccountChanged is the topic of an event appended whenever what a
// user's credentials allow may have changed: a session of theirs ended
// (logout, a reused refresh token, a password change, a deactivation), or
// their role or standing changed. It travels through the outbox like every
// other change, so every instance hears it, and the server then checks the
// user's open sockets against the user and sessions as they are now. It is
// the user's own event (OwnerID) and no subscription of the API selects it.
const TopicAccountChanged = "account.changed"

// AccountChange is the payload of a TopicAccountChanged event.
type AccountChange struct {
	UserID int64 `json:"userId"`
	// Reason is why: one of the Revoke* reasons when sessions ended, or
	// AccountRoleChanged, AccountActivated.
	Reason string `json:"reason"`
}

// Reasons of an AccountChange that ends no session.
const (
	AccountRoleChanged = "role_changed"
	AccountActivated   = "activated"
)

// AccountChangedEvent returns the outbox event saying that user's account
// changed for reason.
func AccountChangedEvent(userID int64, reason string) *Event {
	payload, _ := json.Marshal(AccountChange{UserID: userID, Reason: reason}) // cannot fail
	return &Event{Topic: TopicAccountChanged, OwnerID: userID, Payload: payload}
}
