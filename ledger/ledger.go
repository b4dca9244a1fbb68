// Package ledger keeps each user's log of on-chain transactions, which
// cannot be rewritten, and the chain watcher that follows every logged
// transaction on Starknet until its status is final.
package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// Defaults of Config.
const (
	DefaultWatchInterval = 15 * time.Second
	DefaultDropAfter     = 30 * time.Minute
	DefaultBatchSize     = 100
	// MaxFirst bounds a page of transactions.
	MaxFirst = 100
	// MaxCheckInterval caps the per-transaction backoff (unless
	// WatchInterval itself is longer).
	MaxCheckInterval = 10 * time.Minute
)

// Limits of a logged transaction.
const (
	// MaxTokenLength bounds a token symbol.
	MaxTokenLength = 16
	// MaxDetailsBytes bounds the details object, compacted.
	MaxDetailsBytes = 16 << 10
)

// Config configures a Service.
type Config struct {
	// WatchInterval is how soon a young transaction is checked again
	// (TX_WATCH_INTERVAL, default 15 s); older ones back off from it.
	WatchInterval time.Duration
	// DropAfter is how long the node may not know a logged transaction
	// before it is DROPPED (TX_DROP_AFTER, default 30 min).
	DropAfter time.Duration
	// BatchSize is how many due transactions Watch loads at a time
	// (default 100).
	BatchSize int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives what the watcher notices (default: discarded).
	Logger *slog.Logger
}

// Service holds the transaction log's use cases: resolvers and the
// scheduler's watch job go through it.
type Service struct {
	db   *store.DB
	node NodeClient
	cfg  Config
}

// New returns a ledger on db that follows transactions on node. Zero (or
// negative) fields of cfg take their defaults.
func New(db *store.DB, node NodeClient, cfg Config) *Service {
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = DefaultWatchInterval
	}
	if cfg.DropAfter <= 0 {
		cfg.DropAfter = DefaultDropAfter
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, node: node, cfg: cfg}
}

// LogTransaction logs a transaction of the signed-in user: txHash (not
// zero), type, amount (positive, in the token's own units, at most 78
// significant digits and 18 decimals), token (1 to 16 letters, digits or
// dots), tokenAddress (an optional Starknet address) and details (an
// optional JSON object of at most 16 KiB). Its status is PENDING until the
// watcher hears of it. The transaction, its first history step and its
// transaction.updated event commit together. Logging a hash the user has
// logged already returns that transaction as it is now, and changes
// nothing.
// Errors: EUNAUTHENTICATED; EINVALID naming the field (input.amount, …);
// ECONFLICT when another user logged the hash; internal ones.
func (s *Service) LogTransaction(ctx context.Context, in obsqra.LogTransactionInput) (*obsqra.Transaction, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	t, err := validate(in)
	if err != nil {
		return nil, err
	}
	t.UserID = pr.User.ID
	var out *obsqra.Transaction
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		stored, created, err := tx.InsertTransaction(ctx, t)
		if err != nil {
			return err
		}
		if stored.UserID != t.UserID {
			return obsqra.Errorf(obsqra.ECONFLICT, "input.txHash: this transaction is logged by another user")
		}
		out = stored
		if !created {
			return nil
		}
		return publish(ctx, tx, stored)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// validate checks in and returns the transaction to log.
// Errors: EINVALID naming the field.
func validate(in obsqra.LogTransactionInput) (*obsqra.Transaction, error) {
	switch {
	case in.TxHash.IsZero():
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.txHash must not be zero")
	case !in.Type.IsValid():
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.type must be DEPOSIT, WITHDRAW, ALLOCATE or REBALANCE")
	case in.Amount.IsNegative() || in.Amount.IsZero():
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.amount must be more than 0, got %s", in.Amount)
	case !validToken(in.Token):
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.token must be 1 to %d letters, digits or dots, such as STRK or USDC.e", MaxTokenLength)
	}
	// A Decimal holds at most 78 significant digits and 18 decimals by
	// construction; parsing its text again says so for one built otherwise.
	amount, err := obsqra.ParseDecimal(in.Amount.String())
	if err != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.amount: %s", obsqra.ErrorMessage(err))
	}
	t := &obsqra.Transaction{TxHash: in.TxHash, Type: in.Type, Amount: amount, Token: in.Token}
	if in.TokenAddress != nil {
		a, err := obsqra.ParseAddress(in.TokenAddress.String())
		if err != nil || a.IsZero() {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.tokenAddress is not a Starknet contract address")
		}
		t.TokenAddress = &a
	}
	if in.Details != nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, in.Details); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.details must be a JSON object")
		}
		if buf.Len() > MaxDetailsBytes {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.details must be at most %d bytes of JSON, got %d", MaxDetailsBytes, buf.Len())
		}
		t.Details = obsqra.JSONObject(buf.Bytes())
	}
	return t, nil
}

// validToken reports whether s is 1 to MaxTokenLength ASCII letters,
// digits or dots.
func validToken(s string) bool {
	if len(s) == 0 || len(s) > MaxTokenLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

// Transactions returns a page of the signed-in user's transactions that
// filter selects, newest first (by createdAt, then id), after the cursor
// position after: first+1 rows, so the caller knows whether there is a
// next page. from and to bound createdAt (inclusive).
// Errors: EUNAUTHENTICATED; EINVALID for first outside 1–100, an unknown
// type or status, or from after to; internal ones.
func (s *Service) Transactions(ctx context.Context, filter obsqra.TransactionFilter, first int, after *obsqra.HistoryKey) ([]obsqra.Transaction, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case first < 1 || first > MaxFirst:
		return nil, obsqra.Errorf(obsqra.EINVALID, "first must be between 1 and %d, got %d", MaxFirst, first)
	case filter.Type != nil && !filter.Type.IsValid():
		return nil, obsqra.Errorf(obsqra.EINVALID, "filter.type %q is not a transaction type", *filter.Type)
	case filter.Status != nil && !filter.Status.IsValid():
		return nil, obsqra.Errorf(obsqra.EINVALID, "filter.status %q is not a transaction status", *filter.Status)
	case filter.From != nil && filter.To != nil && filter.From.After(*filter.To):
		return nil, obsqra.Errorf(obsqra.EINVALID, "filter.from must not be after filter.to")
	}
	return s.db.Transactions(ctx, pr.User.ID, filter, after, first+1)
}

// Transaction returns the signed-in user's transaction with the given
// hash (any felt spelling: 0xABC and 0x0…0abc are one hash).
// Errors: EUNAUTHENTICATED; EINVALID for a hash that is not a felt;
// ENOTFOUND when the user logged none with that hash (also when another
// user did); internal ones.
func (s *Service) Transaction(ctx context.Context, hash string) (*obsqra.Transaction, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	h, err := obsqra.ParseFelt(hash)
	if err != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "hash: %s", obsqra.ErrorMessage(err))
	}
	t, err := s.db.TransactionByHash(ctx, h)
	if err != nil {
		return nil, err
	}
	if t.UserID != pr.User.ID {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "transaction not found")
	}
	return t, nil
}

// TransactionByID returns the transaction with the given id to its owner,
// for node(id:) and the like: anyone else, signed in or not, is told there
// is none.
// Errors: the refusal of invalid credentials; ENOTFOUND; internal ones.
func (s *Service) TransactionByID(ctx context.Context, id int64) (*obsqra.Transaction, error) {
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "transaction not found")
	}
	t, err := s.db.Transaction(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.UserID != u.ID {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "transaction not found")
	}
	return t, nil
}

// History returns, keyed by transaction id, the history of each of the
// signed-in user's transactions among ids, oldest step first; another
// user's transaction is absent. One statement for up to 500 ids, so a
// dataloader can batch a page's histories.
// Errors: EUNAUTHENTICATED; internal ones.
func (s *Service) History(ctx context.Context, ids []int64) (map[int64][]obsqra.TxStatusChange, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	return s.db.TransactionHistory(ctx, pr.User.ID, ids)
}

// publish appends t's transaction.updated event, owned by its user, to the
// unit of work that changed it.
func publish(ctx context.Context, tx *store.Tx, t *obsqra.Transaction) error {
	e, err := obsqra.TransactionUpdatedEvent(t)
	if err != nil {
		return err
	}
	return tx.AppendEvent(ctx, e)
}
