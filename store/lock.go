package store

import "context"

// LockDecisions takes, for the rest of this unit of work, the lock that
// serialises appends to the decision log (PostgreSQL; on SQLite the unit
// of work already holds the only write lock). A unit of work that will
// append decisions takes it before touching any other row, so that two
// of them never hold rows the other needs while one waits for the lock.
// Errors: only internal ones.
func (tx *Tx) LockDecisions(ctx context.Context) error {
	c := tx.conn()
	if c.d.eventLock == "" {
		return nil
	}
	_, err := c.exec(ctx, c.d.eventLock, decisionLockKey)
	return translate(err, "lock decision log", "decision")
}
