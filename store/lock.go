package store

import "context"

// LockDecisions takes, for the rest of this unit of work, the locks that
// serialise appends to the decision log and to the outbox, in that order
// of keys every unit of work follows: the outbox's, then the log's (see
// AppendDecision; PostgreSQL; on SQLite the unit of work already holds the
// only write lock). A unit of work that will append decisions takes them
// before touching any other row, so that two of them never hold rows the
// other needs while one waits for a lock, and one that takes the log's
// lock here cannot deadlock with one that appends an event first: with
// the log's lock alone, one that appended an event first (E, D) and one
// that appended a decision first (D, E) deadlocked, and PostgreSQL aborted
// one of them. pg_advisory_xact_lock stacks, so AppendDecision and
// AppendEvent taking them again cost nothing more.
// Errors: only internal ones.
func (tx *Tx) LockDecisions(ctx context.Context) error {
	c := tx.conn()
	if c.d.eventLock == "" {
		return nil
	}
	if _, err := c.exec(ctx, c.d.eventLock, eventLockKey); err != nil {
		return translate(err, "lock event outbox", "decision")
	}
	_, err := c.exec(ctx, c.d.eventLock, decisionLockKey)
	return translate(err, "lock decision log", "decision")
}
