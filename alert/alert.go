// Package alert mails users about what concerns them: it reads the outbox
// from a cursor of its own, records an alert for each user an event
// concerns (a rebalance suggestion that clears their threshold, a
// transaction of theirs that failed, a rise of the risk of a protocol they
// hold), and mails each user's alerts as one digest at most every
// MinInterval, with a one-click unsubscribe link (RFC 8058).
package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// The kinds of alerts, as stored and as the mails' Kind.
const (
	KindSuggestion        = "rebalance_suggestion"
	KindTransactionFailed = "transaction_failed"
	KindRiskRise          = "risk_rise"
	// MailKind is the Kind of a digest mail in the mail queue.
	MailKind = "alerts"
)

// riskWindow is the rolling window of a risk rise: the rise is measured
// against the lowest score of the 24 hours before, and a user hears of a
// protocol's rise at most once in 24 hours.
const riskWindow = 24 * time.Hour

// Defaults and bounds of Config.
const (
	DefaultRiskDelta   = 10
	DefaultMinInterval = time.Hour
	// DefaultBatch is how many outbox events a unit of work reads.
	DefaultBatch = 500
	// maxBatches bounds the batches of one Collect, so that one run of the
	// job is bounded however far behind the cursor is; the next run goes on.
	maxBatches = 20
)

// Config configures a Service.
type Config struct {
	// RiskDelta is the rise of a risk score, in points (0-100 scale), over
	// the lowest score of the previous 24 hours, that alerts the holders
	// (ALERT_RISK_DELTA). Default 10; 1 to 100.
	RiskDelta int
	// MinInterval is the least time between two alert mails to one user
	// (ALERT_MIN_INTERVAL): alerts in between wait for one digest.
	// Default 1 h; 1 min to 24 h.
	MinInterval time.Duration
	// Secret signs the unsubscribe tokens (the server's SECRET_KEY).
	// Required.
	Secret []byte
	// PublicAPIURL is the server's public base URL, without a trailing
	// slash: the unsubscribe link is PublicAPIURL/unsubscribe?token=…
	// Required.
	PublicAPIURL string
	// Batch is how many outbox events one unit of work reads. Default
	// DefaultBatch.
	Batch int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service records and mails alerts.
type Service struct {
	db  *store.DB
	cfg Config
}

// New returns the alert service over db.
// Errors: EINVALID for a missing secret or public URL, or a delta or
// interval out of bounds.
func New(db *store.DB, cfg Config) (*Service, error) {
	if cfg.RiskDelta == 0 {
		cfg.RiskDelta = DefaultRiskDelta
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case len(cfg.Secret) == 0:
		return nil, obsqra.Errorf(obsqra.EINVALID, "alerts need a secret for their unsubscribe tokens")
	case cfg.PublicAPIURL == "":
		return nil, obsqra.Errorf(obsqra.EINVALID, "alerts need the public API URL for their unsubscribe links")
	case cfg.RiskDelta < 1 || cfg.RiskDelta > 100:
		return nil, obsqra.Errorf(obsqra.EINVALID, "the alerts' risk delta must be 1 to 100, got %d", cfg.RiskDelta)
	case cfg.MinInterval < time.Minute || cfg.MinInterval > 24*time.Hour:
		return nil, obsqra.Errorf(obsqra.EINVALID, "the alerts' minimum interval must be 1m to 24h, got %s", cfg.MinInterval)
	}
	return &Service{db: db, cfg: cfg}, nil
}

// Run is the alerts job: Collect, then Digest.
// Errors: those of Collect and Digest.
func (s *Service) Run(ctx context.Context) error {
	if _, err := s.Collect(ctx); err != nil {
		return err
	}
	_, err := s.Digest(ctx)
	return err
}

// Collect reads the outbox after the alerts' cursor (at most a bounded
// number of batches) and records the alerts its events call for; each
// batch's alerts and the cursor's move commit in one unit of work, so an
// event is turned into alerts once, even by two runs that overlap (one of
// them fails with ECONFLICT and rolls back). With no cursor yet it starts
// at the newest event: history raises no alerts. It returns how many
// alerts it recorded.
// Errors: ECONFLICT when another run moved the cursor meanwhile; otherwise
// internal ones.
func (s *Service) Collect(ctx context.Context) (int, error) {
	last, err := s.db.LastEventID(ctx)
	if err != nil {
		return 0, err
	}
	cursor, err := s.db.AlertCursor(ctx, last)
	if err != nil {
		return 0, err
	}
	added := 0
	for range maxBatches {
		events, err := s.db.EventsAfter(ctx, cursor, s.cfg.Batch)
		if err != nil || len(events) == 0 {
			return added, err
		}
		next := events[len(events)-1].ID
		n := 0
		err = s.db.WithTx(ctx, func(tx *store.Tx) error {
			n = 0
			for i := range events {
				k, err := s.alertsOf(ctx, tx, &events[i])
				if err != nil {
					return fmt.Errorf("alerts of event %d: %w", events[i].ID, err)
				}
				n += k
			}
			return tx.MoveAlertCursor(ctx, cursor, next)
		})
		if err != nil {
			return added, err
		}
		added += n
		cursor = next
		if len(events) < s.cfg.Batch {
			break
		}
	}
	return added, nil
}

// alertsOf records the alerts e calls for and returns how many.
func (s *Service) alertsOf(ctx context.Context, tx *store.Tx, e *obsqra.Event) (int, error) {
	switch e.Topic {
	case obsqra.TopicPredictionCreated:
		if e.OwnerID == 0 || e.Kind != string(obsqra.PredictionRebalanceSuggestion) {
			return 0, nil
		}
		p, err := obsqra.EventValue[obsqra.Prediction](e)
		if err != nil {
			return 0, err
		}
		return s.suggestion(ctx, tx, p)
	case obsqra.TopicTransactionUpdated:
		t, err := obsqra.EventValue[obsqra.Transaction](e)
		if err != nil {
			return 0, err
		}
		return s.transaction(ctx, tx, t)
	case obsqra.TopicRiskScored:
		r, err := obsqra.EventValue[obsqra.RiskScore](e)
		if err != nil {
			return 0, err
		}
		// The event carries the protocol's slug beside the score.
		var named struct {
			Protocol string `json:"protocol"`
		}
		_ = json.Unmarshal(e.Payload, &named) // decoded once already, as a RiskScore
		return s.riskRise(ctx, tx, r, named.Protocol)
	}
	return 0, nil
}

// suggestion alerts the owner of a rebalance suggestion that clears their
// threshold, once per distinct suggestion (by the digest of its inputs).
func (s *Service) suggestion(ctx context.Context, tx *store.Tx, p *obsqra.Prediction) (int, error) {
	rs, ok, err := p.Suggestion()
	if err != nil || !ok || !rs.ClearsThreshold || len(rs.Trades) == 0 {
		return 0, err
	}
	detail := fmt.Sprintf("A rebalance of your allocation is suggested: %d trade(s), an expected gain of %.0f bps a year net of cost (your threshold: %d bps), cost %s USD.",
		len(rs.Trades), rs.ExpectedImprovementBps, rs.ThresholdBps, rs.CostUsd.String())
	// A suggestion is the same suggestion when it was decided from the
	// same inputs (the optimiser is deterministic): a user who asks for a
	// plan again, or the daily check that finds nothing new, records a
	// prediction of its own for it, but is alerted once.
	key := "prediction " + strconv.FormatInt(p.ID, 10)
	if p.InputsDigest != "" {
		key = "inputs " + p.InputsDigest
	}
	return add(ctx, tx, &store.Alert{UserID: p.UserID, Kind: KindSuggestion, SubjectKey: key, Detail: detail}, 0)
}

// transaction alerts the owner of a transaction that ended DROPPED or
// REVERTED, once per transaction.
func (s *Service) transaction(ctx context.Context, tx *store.Tx, t *obsqra.Transaction) (int, error) {
	var how string
	switch {
	case t.Status == obsqra.TxDropped:
		how = "was dropped: the network never included it"
	case t.ExecutionStatus != nil && *t.ExecutionStatus == obsqra.ExecReverted:
		how = "was reverted"
		if t.FailureReason != nil && *t.FailureReason != "" {
			how += ": " + *t.FailureReason
		}
	default:
		return 0, nil
	}
	detail := fmt.Sprintf("Your %s transaction of %s %s (%s) %s.", t.Type, t.Amount.String(), t.Token, t.TxHash.String(), how)
	return add(ctx, tx, &store.Alert{UserID: t.UserID, Kind: KindTransactionFailed, SubjectKey: strconv.FormatInt(t.ID, 10), Detail: detail}, 0)
}

// riskRise alerts every holder of the scored protocol when the score,
// observed in the last 24 hours, is at least RiskDelta above the lowest
// score of the 24 hours before it, at most once per protocol and holder in
// 24 hours.
func (s *Service) riskRise(ctx context.Context, tx *store.Tx, r *obsqra.RiskScore, slug string) (int, error) {
	// A score of the past (history loaded or imported, a feed catching
	// up after an outage) is no news: only a rise within the last 24
	// hours alerts.
	if s.cfg.Now().Sub(r.ObservedAt) > riskWindow {
		return 0, nil
	}
	low, ok, err := tx.MinRiskScore(ctx, r.ProtocolID, r.ObservedAt.Add(-riskWindow), r.ObservedAt, r.ID)
	if err != nil || !ok || r.Score-low < s.cfg.RiskDelta {
		return 0, err
	}
	holders, err := tx.AlertHolders(ctx, r.ProtocolID)
	if err != nil {
		return 0, err
	}
	if slug == "" {
		slug = "protocol " + strconv.FormatInt(r.ProtocolID, 10)
	}
	detail := fmt.Sprintf("The risk score of %s, which you hold, rose from %d to %d within 24 hours (observed %s).",
		slug, low, r.Score, r.ObservedAt.UTC().Format(time.RFC3339))
	n := 0
	for _, id := range holders {
		k, err := add(ctx, tx, &store.Alert{UserID: id, Kind: KindRiskRise, SubjectKey: "score " + strconv.FormatInt(r.ID, 10),
			ProtocolID: r.ProtocolID, Detail: detail}, riskWindow)
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// add records a and returns 1 if it did.
func add(ctx context.Context, tx *store.Tx, a *store.Alert, quiet time.Duration) (int, error) {
	ok, err := tx.AddAlert(ctx, a, quiet)
	if err != nil || !ok {
		return 0, err
	}
	return 1, nil
}

// Digest mails each user whose alerts are due (unmailed alerts, and no
// alert mail in the last MinInterval) one mail with all of them, and
// marks them mailed in the unit of work that queues the mail, one per
// user. It first drops the unmailed alerts of users who turned alerts off
// since. It returns how many mails it queued.
// Errors: internal ones (a user's failure stops the run; the mails queued
// before it stay queued).
func (s *Service) Digest(ctx context.Context) (int, error) {
	if _, err := s.db.DropUnwantedAlerts(ctx); err != nil {
		return 0, err
	}
	users, err := s.db.DigestUsers(ctx, s.cfg.Now().Add(-s.cfg.MinInterval))
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, id := range users {
		queued := false
		err := s.db.WithTx(ctx, func(tx *store.Tx) error {
			u, err := tx.UserByID(ctx, id)
			if err != nil {
				return err
			}
			if !u.Active || !u.EmailVerified || !u.Preferences.EmailAlerts {
				return nil
			}
			alerts, err := tx.UnmailedAlerts(ctx, id)
			if err != nil || len(alerts) == 0 {
				return err
			}
			m := s.mail(u, alerts)
			if err := tx.QueueMail(ctx, m); err != nil {
				return err
			}
			ids := make([]int64, len(alerts))
			for i, a := range alerts {
				ids[i] = a.ID
			}
			queued = true
			return tx.MarkAlertsMailed(ctx, ids)
		})
		switch {
		case obsqra.ErrorCode(err) == obsqra.ECONFLICT:
			// Another run mailed them meanwhile: nothing to do.
		case err != nil:
			return sent, fmt.Errorf("alert digest of user %d: %w", id, err)
		case queued:
			sent++
		}
	}
	return sent, nil
}

// Unsubscribe turns off the alerts of the user token was made for (see
// Token), with the user's account event as any change of the user.
// Unsubscribing twice is no error.
// Errors: EINVALID for a token that is not valid; otherwise internal ones.
func (s *Service) Unsubscribe(ctx context.Context, token string) error {
	id, err := s.userOf(token)
	if err != nil {
		return err
	}
	return s.db.WithTx(ctx, func(tx *store.Tx) error {
		u, err := tx.UserByID(ctx, id)
		if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
			return errBadToken
		}
		if err != nil || !u.Preferences.EmailAlerts {
			return err
		}
		u.Preferences.EmailAlerts = false
		return tx.UpdateUser(ctx, u)
	})
}

// UnsubscribeURL returns the one-click unsubscribe link of the user userID.
func (s *Service) UnsubscribeURL(userID int64) string {
	return s.cfg.PublicAPIURL + "/unsubscribe?token=" + s.Token(userID)
}
