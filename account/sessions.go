package account

import (
	"context"
	"sync"

	"github.com/obsqra/obsqra"
)

// maxKeptSessions bounds the sessions Authenticate keeps: a few hundred
// bytes each, so at most a few MiB; past it, arbitrary ones are dropped
// (a dropped session is read again on its next request).
const maxKeptSessions = 16384

// keptSession is a session and its user as read at stamp.
type keptSession struct {
	sess  obsqra.Session
	user  obsqra.User
	stamp obsqra.Stamp
}

// sessions keeps the sessions Authenticate read, each until an event of
// its user arrives (a session ending, a password, role or standing
// changing, any change of the user's row: every one appends the user's
// own event), following the hub's generations. Without generations it
// keeps nothing, and every request reads its session.
type sessions struct {
	gens *obsqra.Generations
	mu   sync.RWMutex
	byID map[string]*keptSession
}

// sessionUser returns session id and its user: kept, when the kept copy
// is still current for the user's events, else read from the database
// (and kept). The user is the caller's own copy.
func (s *Service) sessionUser(ctx context.Context, id string, userID int64) (*obsqra.Session, *obsqra.User, error) {
	k := &s.sessions
	stamp, ok := k.gens.Stamp(userID)
	if !ok {
		return s.db.SessionUser(ctx, id)
	}
	k.mu.RLock()
	e := k.byID[id]
	k.mu.RUnlock()
	if e != nil && e.stamp.Owner == stamp.Owner && e.user.ID == userID {
		sess, u := e.sess, e.user
		return &sess, &u, nil
	}
	sess, u, err := s.db.SessionUser(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	kept := &keptSession{sess: *sess, user: *u, stamp: stamp}
	k.mu.Lock()
	if len(k.byID) >= maxKeptSessions {
		n := 0
		for key := range k.byID {
			delete(k.byID, key)
			if n++; n >= maxKeptSessions/16 {
				break
			}
		}
	}
	k.byID[id] = kept
	k.mu.Unlock()
	return sess, u, nil
}
