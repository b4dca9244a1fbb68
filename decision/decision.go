// Package decision keeps the hash-chained decision log: it appends entries,
// hashes them with a key it is given at construction, verifies one entry
// (recomputing it through its kind and checking the chain up to it),
// audits the whole chain, and says who may see an entry. Each kind of
// decision is recomputed by the package that makes it (a Kind); cmd/obsqra
// registers them. The SQL stays in store.
package decision

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// Kind is one kind of decision, as the package that records it knows it:
// how to recompute an entry and whom it belongs to.
type Kind interface {
	// Kind is the kind of the decisions it knows.
	Kind() obsqra.DecisionKind
	// Verify recomputes d from its recorded inputs and records in v what it
	// found: Recomputed and Matches, and whatever else the kind checks
	// (the on-chain score of a risk score, say). A record that no longer
	// parses does not match; it is not an error.
	// Errors: only internal ones.
	Verify(ctx context.Context, d *obsqra.Decision, v *obsqra.DecisionVerification) error
	// Owner returns the user d was made for (0 when the record does not
	// say), or public true for a decision anyone may see.
	Owner(d *obsqra.Decision) (userID int64, public bool)
}

// Log is the decision log. Its methods are safe for concurrent use.
type Log struct {
	db    *store.DB
	key   []byte
	kinds map[obsqra.DecisionKind]Kind

	mu sync.Mutex
	// verified is the end of the log's prefix this process has verified
	// (see Verify).
	verified chainPoint
}

// chainPoint is a verified entry of the decision log: every entry up to
// and including it checked.
type chainPoint struct {
	id   int64
	hash string
}

// New returns the decision log of db, hashed with key (see Key), that
// verifies decisions of the given kinds. There is no log without a key:
// an empty one is refused, as are a nil kind and two kinds of one name.
func New(db *store.DB, key []byte, kinds ...Kind) (*Log, error) {
	if len(key) == 0 {
		return nil, errors.New("decision log: empty key")
	}
	l := &Log{db: db, key: append([]byte(nil), key...), kinds: make(map[obsqra.DecisionKind]Kind, len(kinds)),
		verified: chainPoint{hash: obsqra.GenesisHash}}
	for _, k := range kinds {
		if k == nil {
			return nil, errors.New("decision log: nil kind")
		}
		if _, dup := l.kinds[k.Kind()]; dup {
			return nil, fmt.Errorf("decision log: kind %s registered twice", k.Kind())
		}
		l.kinds[k.Kind()] = k
	}
	return l, nil
}

// Key derives the key of the decision log's hashes from the server's
// secret key, so the log's key is never the tokens' key itself.
func Key(secret []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("obsqra decision log v1"))
	return h.Sum(nil)
}

// Hash returns the hash the entry must carry: hex HMAC-SHA256, with key,
// over a versioned, newline-separated encoding of PrevHash, ID, Kind,
// ModelVersion, CreatedAt (RFC 3339, UTC, microseconds) and the exact bytes
// of Inputs and Output. Covering the id and the previous hash makes the log
// a chain: removing, reordering or editing any entry breaks it. The key
// (derived from SECRET_KEY, never stored in the database) is what keeps the
// database's owner from rewriting an entry and recomputing the hashes after
// it: without the key no hash can be recomputed.
func Hash(key []byte, d *obsqra.Decision) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("obsqra-decision-v1\n" + d.PrevHash + "\n" + strconv.FormatInt(d.ID, 10) + "\n" +
		string(d.Kind) + "\n" + d.ModelVersion + "\n" +
		d.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z") + "\n"))
	h.Write([]byte(strconv.Itoa(len(d.Inputs)) + "\n"))
	h.Write(d.Inputs)
	h.Write([]byte("\n"))
	h.Write(d.Output)
	return hex.EncodeToString(h.Sum(nil))
}

// hash is Hash with the log's key.
func (l *Log) hash(d *obsqra.Decision) string { return Hash(l.key, d) }

// Append appends d to the log in tx's unit of work: d gets its id, its
// link to the previous entry, its time and its hash (see
// store.Tx.AppendDecision). Errors: only internal ones.
func (l *Log) Append(ctx context.Context, tx *store.Tx, d *obsqra.Decision) error {
	return tx.AppendDecision(ctx, d, l.hash)
}

// Decision returns the decision with the given id, whoever may see it (see
// Visible). Errors: ENOTFOUND.
func (l *Log) Decision(ctx context.Context, id int64) (*obsqra.Decision, error) {
	return l.db.Decision(ctx, id)
}

// Visible reports whether the caller may see d: a public decision (a risk
// score, market-wide) anyone; a decision made for a user is theirs (and
// the admins'); one of a kind this log does not know only the admins'.
// Errors: refused credentials (see obsqra.Viewer).
func (l *Log) Visible(ctx context.Context, d *obsqra.Decision) (bool, error) {
	k, ok := l.kinds[d.Kind]
	var owner int64
	if ok {
		var public bool
		if owner, public = k.Owner(d); public {
			return true, nil
		}
	}
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return false, err
	}
	if u.IsAdmin() {
		return true, nil
	}
	return ok && u != nil && owner == u.ID, nil
}

// Verify recomputes a decision from its recorded inputs through its kind
// (which checks too what else it serves from it, such as the stored risk
// score), and checks the hash chain up to it. The chain is verified in full
// once per process and then only beyond what was verified (the verified
// prefix is remembered, and the decision-audit job re-verifies the whole
// chain periodically), so a call costs the entries added since. Whatever
// the prefix, the decision and its predecessor are read again and
// rehashed, and the decision's link to its predecessor checked: a rewrite
// of either is seen at once, even of entries this process verified before.
// A rewrite of an older entry that keeps its stored hash is seen by the
// next audit, not here (see Audit). A break inside the verified prefix
// forgets it, so that every later call walks the chain again and reports
// the break.
// Errors: ENOTFOUND (also for a decision the caller may not see);
// EINVALID for a kind this server cannot recompute.
func (l *Log) Verify(ctx context.Context, id int64) (*obsqra.DecisionVerification, error) {
	d, err := l.db.Decision(ctx, id)
	if err != nil {
		return nil, err
	}
	if visible, err := l.Visible(ctx, d); err != nil {
		return nil, err
	} else if !visible {
		// Decisions of other kinds belong to users: as node(id:) does,
		// the server does not say they exist.
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "decision not found")
	}
	k, ok := l.kinds[d.Kind]
	if !ok {
		return nil, obsqra.Errorf(obsqra.EINVALID, "decisions of kind %s cannot be recomputed here", d.Kind)
	}
	v := &obsqra.DecisionVerification{Decision: d}
	if err := k.Verify(ctx, d, v); err != nil {
		return nil, err
	}
	brokenAt, err := l.verifyChainTo(ctx, d)
	if err != nil {
		return nil, err
	}
	v.ChainValid, v.BrokenAt = brokenAt == 0, brokenAt
	return v, nil
}

// verifyChainTo checks the decision log up to d (see Verify) and returns
// the first entry that fails, or 0. The walk starts after the verified
// prefix, but never later than two entries before d: d and its predecessor
// are always read and rehashed, the predecessor linked to the hash its own
// predecessor stores now (not to one remembered), d to the predecessor's.
func (l *Log) verifyChainTo(ctx context.Context, d *obsqra.Decision) (int64, error) {
	l.mu.Lock()
	w := l.verified
	l.mu.Unlock()
	from, fromHash := w.id, w.hash
	if from > d.ID-2 {
		// Entry from is inside the prefix: its stored hash is trusted, as
		// the prefix was verified with it ("" reads it from the log).
		from, fromHash = max(d.ID-2, 0), ""
	}
	brokenAt, err := l.verifyRange(ctx, from, fromHash, d.ID)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case brokenAt != 0 && brokenAt <= l.verified.id:
		// The prefix was rewritten after it was verified: trust none of it.
		l.verified = chainPoint{hash: obsqra.GenesisHash}
	case brokenAt == 0 && l.verified.id < d.ID && l.verified.id >= from:
		l.verified = chainPoint{d.ID, d.Hash}
	}
	return brokenAt, nil
}

// Audit re-verifies the whole decision log, for the scheduler's
// decision-audit job: it catches an entry rewritten after this process
// verified it. A broken chain resets what Verify trusts, so every later
// call reports it. Errors: a broken chain (naming the first bad entry);
// internal ones.
func (l *Log) Audit(ctx context.Context) error {
	last, hash, err := l.db.LastDecision(ctx)
	if err != nil {
		return err
	}
	brokenAt, err := l.verifyRange(ctx, 0, obsqra.GenesisHash, last)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if brokenAt != 0 {
		l.verified = chainPoint{hash: obsqra.GenesisHash}
		return fmt.Errorf("decision log broken at entry %d of %d: an entry was changed, removed or reordered outside the server", brokenAt, last)
	}
	if l.verified.id < last {
		l.verified = chainPoint{last, hash}
	}
	return nil
}

// chainBatch is how many entries verifyRange reads per statement.
const chainBatch = 2000

// verifyRange walks the log from the entry after afterID through upTo,
// taking afterHash as the hash of entry afterID (an empty afterHash is read
// from the log, trusting entry afterID as it is), recomputing each entry's
// hash and checking that it links to its predecessor's and that ids leave
// no gap. It returns the first entry that fails (upTo+1 when entries are
// missing, afterID when entry afterID is), or 0 when the range is whole.
// Errors: only internal ones.
func (l *Log) verifyRange(ctx context.Context, afterID int64, afterHash string, upTo int64) (brokenAt int64, err error) {
	if afterHash == "" {
		if afterID == 0 {
			afterHash = obsqra.GenesisHash
		} else {
			d, err := l.db.Decision(ctx, afterID)
			if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
				return afterID, nil
			} else if err != nil {
				return 0, fmt.Errorf("read decision hash: %w", err)
			}
			afterHash = d.Hash
		}
	}
	prev, next := afterHash, afterID+1
	for next <= upTo {
		batch, err := l.db.Decisions(ctx, next, upTo, chainBatch)
		if err != nil {
			return 0, err
		}
		if len(batch) == 0 {
			return next, nil // entries up to upTo are missing
		}
		for i := range batch {
			d := &batch[i]
			if d.ID != next || d.PrevHash != prev || l.hash(d) != d.Hash {
				return next, nil
			}
			prev, next = d.Hash, next+1
		}
	}
	return 0, nil
}
