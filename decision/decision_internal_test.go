package decision

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// testKey is the key of the logs of these tests.
var testKey = []byte("the decision tests' key")

// owned is a kind of decision for the tests: it matches when the output
// is {"ok":true}, and belongs to the user its inputs name, or to everyone
// when public.
type owned struct {
	kind   obsqra.DecisionKind
	public bool
}

func (k owned) Kind() obsqra.DecisionKind { return k.kind }

func (k owned) Verify(_ context.Context, d *obsqra.Decision, v *obsqra.DecisionVerification) error {
	v.Recomputed = obsqra.JSONObject(`{"ok":true}`)
	v.Matches = string(d.Output) == string(v.Recomputed)
	return nil
}

func (k owned) Owner(d *obsqra.Decision) (int64, bool) {
	var owner int64
	fmt.Sscanf(string(d.Inputs), `{"user":%d`, &owner)
	return owner, k.public
}

// entry returns a decision to append, told apart by n.
func entry(kind obsqra.DecisionKind, n int) *obsqra.Decision {
	return &obsqra.Decision{Kind: kind, ModelVersion: "test-v1",
		Inputs: obsqra.JSONObject(fmt.Sprintf(`{"user":%d}`, n)), Output: obsqra.JSONObject(`{"ok":true}`)}
}

// appendN appends n entries of kind through l, in one unit of work, and
// returns them.
func appendN(t *testing.T, db *store.DB, l *Log, kind obsqra.DecisionKind, n int) []*obsqra.Decision {
	t.Helper()
	ctx := context.Background()
	var out []*obsqra.Decision
	err := db.WithTx(ctx, func(tx *store.Tx) error {
		for i := range n {
			d := entry(kind, i+1)
			if err := l.Append(ctx, tx, d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("append %d decisions: %v", n, err)
	}
	return out
}

func newLog(t *testing.T, db *store.DB, key []byte) *Log {
	t.Helper()
	l, err := New(db, key, owned{kind: obsqra.DecisionRiskScore, public: true}, owned{kind: obsqra.DecisionOptimization})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return l
}

// TestNewRefuses: there is no log without a key, and a kind is known once.
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	for _, tt := range []struct {
		name  string
		key   []byte
		kinds []Kind
		want  string
	}{
		{"nil key", nil, nil, "empty key"},
		{"empty key", []byte{}, nil, "empty key"},
		{"nil kind", testKey, []Kind{nil}, "nil kind"},
		{"a kind twice", testKey, []Kind{owned{kind: obsqra.DecisionOptimization}, owned{kind: obsqra.DecisionOptimization}}, "twice"},
	} {
		if l, err := New(db, tt.key, tt.kinds...); err == nil || !strings.Contains(err.Error(), tt.want) || l != nil {
			t.Errorf("New(%s) = %v, %v, want an error saying %q", tt.name, l, err, tt.want)
		}
	}
	if _, err := New(db, testKey); err != nil {
		t.Errorf("New(a key, no kinds) = %v", err)
	}
}

// TestAppendHashesWithTheKey: an entry carries Hash with the log's key,
// linked to its predecessor; a log with another key finds the chain broken
// from its first entry.
func TestAppendHashesWithTheKey(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		l := newLog(t, db, testKey)
		ds := appendN(t, db, l, obsqra.DecisionRiskScore, 3)
		prev := obsqra.GenesisHash
		for i, d := range ds {
			if d.ID != int64(i+1) || d.PrevHash != prev || d.Hash != Hash(testKey, d) || d.Hash == Hash([]byte("other"), d) {
				t.Errorf("entry %d = id %d, prev %s, hash %s; want id %d, prev %s, hashed with the log's key", i, d.ID, d.PrevHash, d.Hash, i+1, prev)
			}
			prev = d.Hash
		}
		if err := l.Audit(ctx); err != nil {
			t.Errorf("Audit() = %v", err)
		}
		other := newLog(t, db, Key([]byte("another server's secret")))
		if err := other.Audit(ctx); err == nil || !strings.Contains(err.Error(), "broken at entry 1 of 3") {
			t.Errorf("Audit() with another key = %v, want broken at entry 1", err)
		}
		if v, err := other.Verify(ctx, 3); err != nil || v.ChainValid || v.BrokenAt != 1 {
			t.Errorf("Verify(3) with another key = %+v, %v, want the chain broken at 1", v, err)
		}
	})
}

// TestVerifyRange: the walk names the first entry missing or not checking.
func TestVerifyRange(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		l := newLog(t, db, testKey)
		for upTo, want := range map[int64]int64{0: 0, 1: 1} {
			if got, err := l.verifyRange(ctx, 0, obsqra.GenesisHash, upTo); err != nil || got != want {
				t.Errorf("verifyRange(%d) of an empty log = %d, %v, want %d", upTo, got, err, want)
			}
		}
		if err := l.Audit(ctx); err != nil {
			t.Errorf("Audit() of an empty log = %v", err)
		}
		appendN(t, db, l, obsqra.DecisionRiskScore, 6)
		for upTo, want := range map[int64]int64{0: 0, 1: 0, 6: 0, 7: 7, 100: 7} {
			if got, err := l.verifyRange(ctx, 0, obsqra.GenesisHash, upTo); err != nil || got != want {
				t.Errorf("verifyRange(%d) of 6 entries = %d, %v, want %d", upTo, got, err, want)
			}
		}
		if got, err := l.verifyRange(ctx, 3, "", 6); err != nil || got != 0 {
			t.Errorf("verifyRange(after 3, its stored hash, to 6) = %d, %v, want 0", got, err)
		}
		if got, err := l.verifyRange(ctx, 9, "", 12); err != nil || got != 9 {
			t.Errorf("verifyRange(after a missing 9) = %d, %v, want 9", got, err)
		}
	})
}

// exec runs q on db's database past the store, with ? placeholders.
func exec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if db.Dialect() == store.DialectPostgres {
		var b strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				fmt.Fprintf(&b, "$%d", n)
				continue
			}
			b.WriteRune(r)
		}
		q = b.String()
	}
	if err := storetest.Exec(t, db, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// tamper runs stmt as the tables' owner could, past the append-only
// triggers of decisions (gone for the rest of the test).
func tamper(t *testing.T, db *store.DB, stmt string, args ...any) {
	t.Helper()
	if db.Dialect() == store.DialectPostgres {
		exec(t, db, "ALTER TABLE decisions DISABLE TRIGGER decisions_append_only")
	} else {
		exec(t, db, "DROP TRIGGER IF EXISTS decisions_no_update")
		exec(t, db, "DROP TRIGGER IF EXISTS decisions_no_delete")
	}
	exec(t, db, stmt, args...)
}

// TestDecisionTampering: whoever gets past the triggers still cannot
// rewrite the decision log unseen; the walk names the first entry that no
// longer checks.
func TestDecisionTampering(t *testing.T) {
	t.Parallel()
	const n = 5
	// rehash rewrites the entry's output and hashes it again with the
	// log's own key, as an owner who had it would (and still breaks the
	// link of the entry after it).
	rehash := func(t *testing.T, db *store.DB, id int64, change func(d *obsqra.Decision)) {
		t.Helper()
		d, err := db.Decision(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		change(d)
		tamper(t, db, "UPDATE decisions SET output = ?, hash = ? WHERE id = ?", string(d.Output), Hash(testKey, d), id)
	}
	for _, tc := range []struct {
		name   string
		chain  int
		tamper func(t *testing.T, db *store.DB)
		want   int64
	}{
		{"output of 2 changed", n, func(t *testing.T, db *store.DB) {
			tamper(t, db, `UPDATE decisions SET output = '{"ok":false}' WHERE id = 2`)
		}, 2},
		{"output of 2 changed and rehashed", n, func(t *testing.T, db *store.DB) {
			rehash(t, db, 2, func(d *obsqra.Decision) { d.Output = obsqra.JSONObject(`{"ok":false}`) })
		}, 3},
		{"time of 4 changed", n, func(t *testing.T, db *store.DB) {
			if db.Dialect() == store.DialectPostgres {
				tamper(t, db, "UPDATE decisions SET created_at = created_at - interval '1 hour' WHERE id = 4")
			} else {
				tamper(t, db, "UPDATE decisions SET created_at = '2001-01-01T00:00:00.000000Z' WHERE id = 4")
			}
		}, 4},
		{"inputs of 1 changed", n, func(t *testing.T, db *store.DB) {
			tamper(t, db, `UPDATE decisions SET inputs = '{"user": 1}' WHERE id = 1`)
		}, 1},
		{"3 deleted", n, func(t *testing.T, db *store.DB) { tamper(t, db, "DELETE FROM decisions WHERE id = 3") }, 3},
		{"last deleted", n, func(t *testing.T, db *store.DB) { tamper(t, db, "DELETE FROM decisions WHERE id = 5") }, 5},
		{"1 and 2 swapped", n, func(t *testing.T, db *store.DB) {
			tamper(t, db, "UPDATE decisions SET id = CASE id WHEN 1 THEN -2 ELSE -1 END WHERE id IN (1, 2)")
			tamper(t, db, "UPDATE decisions SET id = -id WHERE id < 0")
		}, 1},
		// verifyRange reads chainBatch entries per statement.
		{"an entry of the second batch changed", chainBatch + 3, func(t *testing.T, db *store.DB) {
			tamper(t, db, `UPDATE decisions SET output = '{"ok":false}' WHERE id = ?`, chainBatch+2)
		}, chainBatch + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				t.Parallel()
				ctx := context.Background()
				l := newLog(t, db, testKey)
				appendN(t, db, l, obsqra.DecisionRiskScore, tc.chain)
				upTo := int64(tc.chain)
				if got, err := l.verifyRange(ctx, 0, obsqra.GenesisHash, upTo); err != nil || got != 0 {
					t.Fatalf("verifyRange(%d) before tampering = %d, %v, want 0", upTo, got, err)
				}
				tc.tamper(t, db)
				if got, err := l.verifyRange(ctx, 0, obsqra.GenesisHash, upTo); err != nil || got != tc.want {
					t.Errorf("verifyRange(%d) = %d, %v, want %d", upTo, got, err, tc.want)
				}
				if got, err := l.verifyRange(ctx, 0, obsqra.GenesisHash, tc.want-1); err != nil || got != 0 {
					t.Errorf("verifyRange(%d), before the tampered entry, = %d, %v, want 0", tc.want-1, got, err)
				}
			})
		})
	}
}

// TestVisibility: a public kind's decisions are anyone's; an owned kind's
// their owner's and the admins'; an unknown kind's the admins' only, and
// then Verify says it cannot recompute them.
func TestVisibility(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	ctx := context.Background()
	l := newLog(t, db, testKey)
	public := appendN(t, db, l, obsqra.DecisionRiskScore, 1)[0]
	private := appendN(t, db, l, obsqra.DecisionOptimization, 1)[0] // user 1's
	unknown := appendN(t, db, l, obsqra.DecisionKind("REBALANCE"), 1)[0]
	as := func(id int64, role obsqra.Role) context.Context {
		return obsqra.NewContextWithPrincipal(ctx, &obsqra.Principal{User: &obsqra.User{ID: id, Role: role, Active: true}})
	}
	for _, tt := range []struct {
		name string
		ctx  context.Context
		d    *obsqra.Decision
		want bool
	}{
		{"public, anonymous", ctx, public, true},
		{"owned, anonymous", ctx, private, false},
		{"owned, its owner", as(1, obsqra.RoleUser), private, true},
		{"owned, another user", as(2, obsqra.RoleUser), private, false},
		{"owned, an admin", as(2, obsqra.RoleAdmin), private, true},
		{"unknown kind, a user", as(1, obsqra.RoleUser), unknown, false},
		{"unknown kind, an admin", as(2, obsqra.RoleAdmin), unknown, true},
	} {
		if got, err := l.Visible(tt.ctx, tt.d); err != nil || got != tt.want {
			t.Errorf("Visible(%s) = %v, %v, want %v", tt.name, got, err, tt.want)
		}
	}
	if v, err := l.Verify(as(1, obsqra.RoleUser), private.ID); err != nil || !v.Matches || !v.ChainValid {
		t.Errorf("Verify(owned) by its owner = %+v, %v, want a match on a valid chain", v, err)
	}
	if _, err := l.Verify(as(2, obsqra.RoleUser), private.ID); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
		t.Errorf("Verify(owned) by another user = %v, want ENOTFOUND", err)
	}
	if _, err := l.Verify(as(2, obsqra.RoleAdmin), unknown.ID); obsqra.ErrorCode(err) != obsqra.EINVALID {
		t.Errorf("Verify(unknown kind) by an admin = %v, want EINVALID", err)
	}
	if _, err := l.Verify(ctx, 99); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
		t.Errorf("Verify(99) = %v, want ENOTFOUND", err)
	}
}
