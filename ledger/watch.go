package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// Bounds of what the history keeps of a node's words: its raw answer and a
// revert reason (which can be a whole Cairo trace).
const (
	maxRawStatus = 4096
	maxReason    = 4096
)

// Reasons of the history's steps.
const (
	reasonReported = "reported by the node"
	reasonReverted = "reverted"
	reasonRejected = "rejected by the node"
)

// Watch is the scheduler's watch job: it checks every transaction whose
// check is due, in batches, soonest due first. For each it asks the node
// for the status (and for the receipt once the transaction is in a block)
// and records what moved forward as one unit of work: a history step with
// the node's raw answer and a reason, the new state, and a
// transaction.updated event. An older status than the one recorded (a
// lagging node) is ignored. A transaction the node does not know (error
// 29) is "not yet seen" until it has not known it for DropAfter (counted
// from the logging while it was never seen), and then DROPPED. Each
// transaction's next check backs off with its age (see nextCheck).
//
// A node that cannot be reached (ErrUnavailable) ends the run with the
// error, so the scheduler records the failure: the transactions checked
// before it keep what was recorded, the rest are left exactly as they
// were, due, for the next run. Any other failure concerns one transaction
// (an error for its hash, a malformed answer): it is logged, that
// transaction is put off, and the run goes on. It returns how many
// transactions it checked.
// Errors: the node's failure, wrapped with the transaction's hash;
// internal ones.
func (s *Service) Watch(ctx context.Context) (int, error) {
	// The run takes what is due at its start: each check moves its
	// transaction's next check past that, so the run ends however long its
	// checks take, and what falls due meanwhile waits for the next run.
	start := s.cfg.Now()
	checked := 0
	for {
		due, err := s.db.DueTransactions(ctx, start, s.cfg.BatchSize)
		if err != nil {
			return checked, err
		}
		for i := range due {
			if err := ctx.Err(); err != nil {
				return checked, err
			}
			if err := s.check(ctx, &due[i]); err != nil {
				if errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
					return checked, fmt.Errorf("check transaction %s: %w", due[i].TxHash, err)
				}
				// A failure about this one transaction (a malformed or
				// oversized answer, an error for its hash) must not stop
				// the others behind it run after run: it is logged and
				// the transaction is put off like an aging one.
				s.cfg.Logger.Warn("could not check transaction; checking the others", "tx_hash", due[i].TxHash.String(), "error", err)
				if err := s.touch(ctx, &due[i], s.cfg.Now(), due[i].NotFoundSince); err != nil {
					return checked, err
				}
			}
			checked++
		}
		if len(due) < s.cfg.BatchSize {
			return checked, nil
		}
	}
}

// check asks the node about w and records what it learnt.
func (s *Service) check(ctx context.Context, w *obsqra.WatchedTransaction) error {
	st, err := s.node.TransactionStatus(ctx, w.TxHash)
	now := s.cfg.Now()
	switch {
	case errors.Is(err, ErrNotFound):
		return s.notFound(ctx, w, now, err)
	case err != nil:
		return fmt.Errorf("ask the node for the status: %w", err)
	}
	log := s.cfg.Logger.With("tx_hash", w.TxHash.String(), "transaction_id", w.ID)
	status, known := finality(st.Finality)
	if !known {
		log.Warn("the node reports an unknown transaction status; left as it was", "finality_status", obsqra.Clip(st.Finality, 64))
		return s.touch(ctx, w, now, nil)
	}
	if status == obsqra.TxDropped && (inBlock(w.Status) || w.ExecutionStatus != nil) {
		// A transaction that made it into a block cannot be dropped: a
		// node that says REJECTED now is wrong or far behind.
		log.Warn("the node reports a transaction in a block as rejected; ignored", "status", w.Status)
		return s.touch(ctx, w, now, nil)
	}
	if status.Rank() < w.Status.Rank() {
		// A node behind the one that answered before (another node of
		// the list, say): what it says is old news.
		log.Info("the node reports an older status than recorded; ignored", "status", w.Status, "node_status", status)
		return s.touch(ctx, w, now, nil)
	}
	exec, failure := execution(log, w, st.Execution, st.FailureReason)

	// The receipt, once the transaction is in a block and until its block
	// number is known.
	var receipt *obsqra.Receipt
	if inBlock(status) && w.BlockNumber == nil {
		r, err := s.node.TransactionReceipt(ctx, w.TxHash)
		switch {
		case errors.Is(err, ErrNotFound):
			log.Info("the node has no receipt for a transaction in a block", "status", status)
		case err != nil:
			return fmt.Errorf("ask the node for the receipt: %w", err)
		default:
			receipt, err = receiptOf(r)
			if err != nil {
				log.Warn("the node's receipt is malformed; ignored", "error", err)
				receipt = nil
				break
			}
			// The receipt may know the execution where the status did not.
			if exec == nil {
				exec, failure = execution(log, w, r.Execution, r.RevertReason)
			}
		}
	}

	var step *obsqra.StatusUpdate
	if status.Rank() > w.Status.Rank() || (exec != nil && w.ExecutionStatus == nil) {
		step = &obsqra.StatusUpdate{Status: status, ExecutionStatus: exec, RawStatus: rawStatus(st), Reason: reasonReported}
		if status == obsqra.TxDropped {
			step.Reason = reasonRejected
		}
		if exec != nil && *exec == obsqra.ExecReverted && w.ExecutionStatus == nil {
			step.FailureReason = failure
			step.Reason = reasonReverted
			if failure != nil {
				step.Reason += ": " + *failure
			}
		}
	}
	return s.record(ctx, w, now, step, receipt, nil)
}

// execution maps the node's execution status: nil while unknown, or when
// it contradicts the one recorded (logged, and the recorded one stays).
func execution(log *slog.Logger, w *obsqra.WatchedTransaction, execution, reason string) (*obsqra.ExecutionStatus, *string) {
	if execution == "" {
		return nil, nil
	}
	e := obsqra.ExecutionStatus(execution)
	if !e.IsValid() {
		log.Warn("the node reports an unknown execution status; ignored", "execution_status", obsqra.Clip(execution, 64))
		return nil, nil
	}
	if w.ExecutionStatus != nil && *w.ExecutionStatus != e {
		log.Warn("the node contradicts the recorded execution status; ignored", "execution_status", *w.ExecutionStatus, "node_execution_status", e)
		return nil, nil
	}
	var failure *string
	if e == obsqra.ExecReverted && reason != "" {
		r := obsqra.Clip(reason, maxReason)
		failure = &r
	}
	return &e, failure
}

// notFound handles the node's error 29 for w: DROPPED once the node has
// not known it for DropAfter, otherwise "not yet seen" until the next
// check. A transaction in a block is not dropped for it: the node that
// answered is behind.
func (s *Service) notFound(ctx context.Context, w *obsqra.WatchedTransaction, now time.Time, nodeErr error) error {
	since := now
	if w.NotFoundSince != nil {
		since = *w.NotFoundSince
	}
	if inBlock(w.Status) {
		s.cfg.Logger.Info("the node does not know a transaction in a block; ignored",
			"tx_hash", w.TxHash.String(), "transaction_id", w.ID, "status", w.Status)
		return s.touch(ctx, w, now, nil)
	}
	// Never seen: the grace period runs from the logging. Seen and then
	// lost (a transaction evicted from the mempool): from the first
	// answer that the node does not know it.
	from, what := since, "the node has not known the transaction since it last reported it, for"
	if w.Status == obsqra.TxPending {
		from, what = w.CreatedAt, "the node has not seen the transaction in the"
	}
	if now.Sub(from) < s.cfg.DropAfter {
		return s.touch(ctx, w, now, &since)
	}
	step := &obsqra.StatusUpdate{
		Status:    obsqra.TxDropped,
		RawStatus: obsqra.Clip(nodeErr.Error(), maxRawStatus),
		Reason:    fmt.Sprintf("dropped: %s %s after it was logged (TX_DROP_AFTER)", what, s.cfg.DropAfter),
	}
	if w.Status != obsqra.TxPending {
		step.Reason = fmt.Sprintf("dropped: %s %s (TX_DROP_AFTER)", what, s.cfg.DropAfter)
	}
	return s.record(ctx, w, now, step, nil, &since)
}

// touch records a check of w that changed nothing.
func (s *Service) touch(ctx context.Context, w *obsqra.WatchedTransaction, now time.Time, notFoundSince *time.Time) error {
	return s.record(ctx, w, now, nil, nil, notFoundSince)
}

// record commits one check of w in one unit of work: the step and the
// receipt when there are any, the schedule of the next check, and the
// transaction.updated event of a change.
func (s *Service) record(ctx context.Context, w *obsqra.WatchedTransaction, now time.Time, step *obsqra.StatusUpdate, receipt *obsqra.Receipt, notFoundSince *time.Time) error {
	status := w.Status
	if step != nil {
		status = step.Status
	}
	var next *time.Time
	if !status.IsFinal() {
		n := s.nextCheck(w, now, notFoundSince)
		next = &n
	}
	var changed *obsqra.Transaction
	err := s.db.WithTx(ctx, func(tx *store.Tx) error {
		if step != nil {
			if _, err := tx.RecordStatus(ctx, w.ID, *step); err != nil {
				return err
			}
		}
		if receipt != nil {
			if err := tx.RecordReceipt(ctx, w.ID, *receipt); err != nil {
				return err
			}
		}
		if err := tx.TouchTransaction(ctx, w.ID, now, next, notFoundSince); err != nil {
			return err
		}
		if step == nil && receipt == nil {
			return nil
		}
		t, err := tx.Transaction(ctx, w.ID)
		if err != nil {
			return err
		}
		changed = t
		return publish(ctx, tx, t)
	})
	if err != nil {
		return err
	}
	if step != nil {
		s.cfg.Logger.Info("transaction status", "tx_hash", changed.TxHash.String(), "transaction_id", changed.ID,
			"status", changed.Status, "execution_status", deref(changed.ExecutionStatus), "reason", obsqra.Clip(step.Reason, 200))
	}
	return nil
}

// nextCheck returns when to check w again after a check at now: after
// WatchInterval while it is less than an hour old, then twice as long for
// each further hour of age, up to MaxCheckInterval (or WatchInterval when
// that is longer). A transaction the node has never seen is checked again
// no later than the moment it is to be dropped.
func (s *Service) nextCheck(w *obsqra.WatchedTransaction, now time.Time, notFoundSince *time.Time) time.Time {
	limit := max(MaxCheckInterval, s.cfg.WatchInterval)
	d := s.cfg.WatchInterval
	for age := now.Sub(w.CreatedAt); age >= time.Hour && d < limit; age -= time.Hour {
		d *= 2
	}
	next := now.Add(min(d, limit))
	if notFoundSince != nil {
		from := *notFoundSince
		if w.Status == obsqra.TxPending {
			from = w.CreatedAt
		}
		if drop := from.Add(s.cfg.DropAfter); drop.After(now) && drop.Before(next) {
			next = drop
		}
	}
	return next
}

// finality maps a node's finality_status to a status; REJECTED, of nodes
// of older specs, means the transaction never made it: DROPPED.
func finality(s string) (obsqra.TxStatus, bool) {
	switch st := obsqra.TxStatus(s); st {
	case obsqra.TxReceived, obsqra.TxCandidate, obsqra.TxPreConfirmed, obsqra.TxAcceptedOnL2, obsqra.TxAcceptedOnL1:
		return st, true
	}
	if s == "REJECTED" {
		return obsqra.TxDropped, true
	}
	return "", false
}

// inBlock reports whether a transaction of status is in a closed block,
// whose receipt is settled.
func inBlock(s obsqra.TxStatus) bool { return s == obsqra.TxAcceptedOnL2 || s == obsqra.TxAcceptedOnL1 }

// receiptOf reads what the ledger keeps of r.
func receiptOf(r NodeReceipt) (*obsqra.Receipt, error) {
	out := &obsqra.Receipt{BlockNumber: r.BlockNumber}
	if r.BlockNumber != nil && *r.BlockNumber < 0 {
		return nil, fmt.Errorf("block number %d", *r.BlockNumber)
	}
	if r.Events < 0 {
		return nil, fmt.Errorf("events count %d", r.Events)
	}
	events := r.Events
	out.EventsEmitted = &events
	if r.FeeAmount != "" {
		amount, err := feeAmount(r.FeeAmount)
		if err != nil {
			return nil, err
		}
		if r.FeeUnit != "WEI" && r.FeeUnit != "FRI" {
			return nil, fmt.Errorf("fee unit %q", obsqra.Clip(r.FeeUnit, 16))
		}
		out.Fee = &obsqra.Fee{Amount: amount, Unit: r.FeeUnit}
	}
	return out, nil
}

// feeAmount reads a fee: a 0x felt, or a decimal integer.
func feeAmount(s string) (obsqra.Decimal, error) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		f, err := obsqra.ParseFelt(s)
		if err != nil {
			return obsqra.Decimal{}, fmt.Errorf("fee amount %q: %w", obsqra.Clip(s, 80), err)
		}
		return obsqra.ParseDecimal(new(big.Int).SetBytes(f[:]).String())
	}
	d, err := obsqra.ParseDecimal(s)
	if err != nil || d.IsNegative() || strings.Contains(d.String(), ".") {
		return obsqra.Decimal{}, fmt.Errorf("fee amount %q is not a whole number of the unit", obsqra.Clip(s, 80))
	}
	return d, nil
}

// rawStatus is what the history keeps of the node's answer.
func rawStatus(st NodeStatus) string {
	if len(st.Raw) > 0 {
		return obsqra.Clip(string(st.Raw), maxRawStatus)
	}
	raw := "finality_status=" + st.Finality
	if st.Execution != "" {
		raw += " execution_status=" + st.Execution
	}
	if st.FailureReason != "" {
		raw += " failure_reason=" + st.FailureReason
	}
	return obsqra.Clip(raw, maxRawStatus)
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
