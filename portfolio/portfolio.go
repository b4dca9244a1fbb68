// Package portfolio keeps each user's allocation snapshots and reads them
// back as a dashboard: the weighted yield and risk of what the user holds,
// how they moved, and what the holdings actually earned.
package portfolio

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// Limits.
const (
	// MaxWeights bounds the weights of one allocation.
	MaxWeights = 100
	// MaxWindowDays bounds a dashboard's and a risk history's window.
	MaxWindowDays = 365
	// carryDays is how far back a day without data of its own takes the
	// last value before it (a feed that skipped a day).
	carryDays = 7
)

// maxPortfolioUsd bounds a recorded portfolio value (a quadrillion USD).
var maxPortfolioUsd = big.NewRat(1e15, 1)

// Config configures a Service.
type Config struct {
	// HorizonDays is the horizon of the stored yield forecasts a dashboard
	// reads its expected APY from (PREDICTION_WINDOW_DAYS, default 7).
	HorizonDays int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Chain reads wallets' positions (WalletPositions); nil when the
	// server has no Starknet node.
	Chain Chain
	// Lagging is what Chain's errors satisfy (errors.Is) when the node
	// answering lacks the block asked about (starknet.ErrBlockNotFound):
	// such a read is asked again, a few times. Nil: never.
	Lagging error
}

// Service holds the portfolio use cases.
type Service struct {
	db        *store.DB
	cfg       Config
	positions positionsCache
}

// New returns a portfolio service on db.
func New(db *store.DB, cfg Config) *Service {
	if cfg.HorizonDays == 0 {
		cfg.HorizonDays = 7
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{db: db, cfg: cfg}
}

// RecordAllocation records how the signed-in user now holds their
// portfolio: weights naming enabled protocols (each once, 0–10000 bps,
// summing to exactly 10000; zero weights are dropped), why, the
// transaction that made it, and the suggestion it follows, whose target it
// must match (the allocation then carries the suggestion's decision). It
// publishes the allocation to its user in the same unit of work.
// Errors: EUNAUTHENTICATED; EINVALID naming the field; ENOTFOUND for a
// suggestion that is not the user's; internal ones.
func (s *Service) RecordAllocation(ctx context.Context, in obsqra.RecordAllocationInput) (*obsqra.Allocation, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	user := pr.User
	if !in.Reason.IsValid() {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.reason must be USER_INITIATED, AUTO_REBALANCE or OPTIMIZATION")
	}
	all, err := s.db.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	var walletBlock int64
	if in.FromWallet != nil && *in.FromWallet {
		if len(in.Weights) > 0 {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights must be omitted with fromWallet: the weights are your wallet's")
		}
		if in.Weights, walletBlock, err = s.walletWeights(ctx, all); err != nil {
			return nil, err
		}
	}
	if len(in.Weights) == 0 || len(in.Weights) > MaxWeights {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights must hold 1 to %d weights, got %d", MaxWeights, len(in.Weights))
	}
	if v := in.PortfolioValueUsd; v != nil && (v.Rat().Sign() <= 0 || v.Rat().Cmp(maxPortfolioUsd) > 0) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.portfolioValueUsd must be more than 0 and at most 1e15 USD, got %s", v)
	}
	if in.TxHash != nil && in.TxHash.IsZero() {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.txHash must not be zero")
	}
	var suggestionID int64
	if in.SuggestionID != nil {
		typ, id, err := obsqra.ParseNodeID(*in.SuggestionID)
		if err != nil || (typ != obsqra.NodeRebalanceSuggestion && typ != obsqra.NodeOptimizationRun && typ != obsqra.NodePrediction) {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.suggestionId is not the id of a suggestion")
		}
		suggestionID = id
	}
	bySlug := make(map[string]*obsqra.Protocol, len(all))
	for i := range all {
		bySlug[all[i].Slug] = &all[i]
	}
	a := &obsqra.Allocation{UserID: user.ID, Reason: in.Reason, TxHash: in.TxHash, PortfolioValueUsd: in.PortfolioValueUsd, WalletBlock: walletBlock}
	seen := make(map[int64]bool, len(in.Weights))
	sum := 0
	for i, w := range in.Weights {
		p, ok := bySlug[w.Protocol]
		switch {
		case !ok:
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights[%d].protocol: there is no protocol %s", i, obsqra.QuoteInput(w.Protocol))
		case !p.Enabled:
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights[%d].protocol: %s is disabled", i, p.Slug)
		case seen[p.ID]:
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights[%d].protocol: %s is named twice", i, p.Slug)
		case w.WeightBps < 0 || w.WeightBps > 10000:
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights[%d].weightBps must be between 0 and 10000, got %d", i, w.WeightBps)
		}
		seen[p.ID] = true
		sum += w.WeightBps
		if w.WeightBps > 0 {
			a.Weights = append(a.Weights, obsqra.Weight{ProtocolID: p.ID, WeightBps: w.WeightBps})
		}
	}
	if sum != 10000 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights sum to %d bps; they must sum to exactly 10000", sum)
	}
	slices.SortFunc(a.Weights, func(x, y obsqra.Weight) int { return int(x.ProtocolID - y.ProtocolID) })
	if suggestionID != 0 {
		p, err := s.db.Prediction(ctx, suggestionID)
		if obsqra.ErrorCode(err) == obsqra.ENOTFOUND || (err == nil && (p.UserID != user.ID || p.Kind != obsqra.PredictionRebalanceSuggestion)) {
			return nil, obsqra.Errorf(obsqra.ENOTFOUND, "input.suggestionId: suggestion not found")
		} else if err != nil {
			return nil, err
		}
		// ok is false for a plan made while the user held no allocation: it
		// may still be followed.
		d, _, err := p.Suggestion()
		if err != nil {
			return nil, err
		}
		if d == nil {
			return nil, fmt.Errorf("suggestion %d records no plan", p.ID)
		}
		if !slices.Equal(nonZero(d.Plan.Weights), a.Weights) {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.weights differ from the target of the suggestion they claim to follow")
		}
		a.SuggestionID, a.DecisionID = p.ID, p.DecisionID
	}
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		if err := tx.InsertAllocation(ctx, a); err != nil {
			return err
		}
		e, err := obsqra.AllocationRecordedEvent(a)
		if err != nil {
			return err
		}
		return tx.AppendEvent(ctx, e)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// nonZero returns the weights above 0, ordered by protocol id.
func nonZero(ws []obsqra.Weight) []obsqra.Weight {
	out := make([]obsqra.Weight, 0, len(ws))
	for _, w := range ws {
		if w.WeightBps > 0 {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(x, y obsqra.Weight) int { return int(x.ProtocolID - y.ProtocolID) })
	return out
}

// Allocation returns the allocation with the given id to its owner.
// Errors: ENOTFOUND (also for another user's).
func (s *Service) Allocation(ctx context.Context, id int64) (*obsqra.Allocation, error) {
	a, err := s.db.Allocation(ctx, id)
	if err != nil {
		return nil, err
	}
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	if u == nil || u.ID != a.UserID {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "allocation not found")
	}
	return a, nil
}

// AllocationHistory returns a page of the signed-in user's allocations,
// newest first: first+1 rows so the caller knows whether there is a next
// page. from and to bound createdAt (inclusive).
// Errors: EUNAUTHENTICATED; EINVALID when from is after to; internal ones.
func (s *Service) AllocationHistory(ctx context.Context, first int, after *obsqra.HistoryKey, from, to *time.Time) ([]obsqra.Allocation, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	if from != nil && to != nil && from.After(*to) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "from must not be after to")
	}
	return s.db.Allocations(ctx, store.AllocationQuery{UserID: pr.User.ID, From: from, To: to, After: after, Limit: first + 1})
}

// window checks a window argument. Errors: EINVALID.
func window(days int) error {
	if days < 1 || days > MaxWindowDays {
		return obsqra.Errorf(obsqra.EINVALID, "windowDays must be between 1 and %d, got %d", MaxWindowDays, days)
	}
	return nil
}

// inEffect returns the allocation in effect on day d: the newest of allocs
// (oldest first) made on or before d, or nil.
func inEffect(allocs []obsqra.Allocation, d obsqra.Date) *obsqra.Allocation {
	i := sort.Search(len(allocs), func(i int) bool { return obsqra.DateOf(allocs[i].CreatedAt) > d })
	if i == 0 {
		return nil
	}
	return &allocs[i-1]
}

// pointOn returns the last point on or before d, within carryDays.
func pointOn(points []obsqra.DailyPoint, d obsqra.Date) (obsqra.DailyPoint, bool) {
	i := sort.Search(len(points), func(i int) bool { return points[i].Day > d })
	if i == 0 || points[i-1].Day < d-carryDays {
		return obsqra.DailyPoint{}, false
	}
	return points[i-1], true
}

// heldIDs returns the protocols any of allocs holds, ordered.
func heldIDs(allocs []obsqra.Allocation) []int64 {
	var ids []int64
	for _, a := range allocs {
		for _, w := range a.Weights {
			ids = append(ids, w.ProtocolID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// AllocationsByTxHash returns the signed-in user's newest allocation
// recorded with each of hashes (absent when none), in one statement.
// Errors: EUNAUTHENTICATED; internal ones.
func (s *Service) AllocationsByTxHash(ctx context.Context, hashes []obsqra.Felt) (map[obsqra.Felt]obsqra.Allocation, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	return s.db.AllocationsByTxHash(ctx, pr.User.ID, hashes)
}
