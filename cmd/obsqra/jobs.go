package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/alert"
	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/scheduler"
	"github.com/obsqra/obsqra/store"
)

// Job timeouts. The ingest job's first run may load a year of history, so
// it gets minutes however short the poll interval is.
const (
	minIngestTimeout = 2 * time.Minute
	pruneTimeout     = 5 * time.Minute
	auditTimeout     = 10 * time.Minute
	// jobRunRetention is how long the scheduler's run records are kept.
	jobRunRetention = 7 * 24 * time.Hour
	// rateBudgetRetention is how long a rate budget untouched is kept: the
	// longest window a budget may have, after which it has refilled.
	rateBudgetRetention = 24 * time.Hour
	// alertInterval is how often the alerts job reads the outbox and
	// mails the digests due: an alert waits at most this long beyond
	// ALERT_MIN_INTERVAL. alertTimeout bounds a run, a few batches.
	alertInterval = 30 * time.Second
	alertTimeout  = 2 * time.Minute
)

// newAlerts returns the alert service: its unsubscribe tokens are signed
// with the server's secret key, its links lead to PUBLIC_API_URL.
func newAlerts(db *store.DB, cfg *config.Config) (*alert.Service, error) {
	return alert.New(db, alert.Config{RiskDelta: cfg.AlertRiskDelta, MinInterval: cfg.AlertMinInterval,
		Secret: cfg.SecretKey, PublicAPIURL: cfg.PublicAPIURL})
}

// alertJob is the leader's job that turns outbox events into alerts and
// mails their digests.
func alertJob(alerts *alert.Service) scheduler.Job {
	return scheduler.Job{
		Name:     "alerts",
		Interval: alertInterval,
		Timeout:  alertTimeout,
		Jitter:   alertInterval / 10,
		Run:      alerts.Run,
	}
}

// newScheduler returns the scheduler with the server's periodic jobs;
// observer (nil: none) hears of their runs and of the leadership.
func newScheduler(db *store.DB, cfg *config.Config, logger *slog.Logger, observer scheduler.Observer, hub *live.Hub, accounts *account.Service, markets *market.Service, advice *advisor.Service, decisions *decision.Log, more ...scheduler.Job) (*scheduler.Scheduler, error) {
	// sched is set below, before any job runs.
	var sched *scheduler.Scheduler
	jobs := []scheduler.Job{{
		Name:     "prune",
		Interval: cfg.PruneInterval,
		Timeout:  pruneTimeout,
		Jitter:   cfg.PruneInterval / 10,
		Run: func(ctx context.Context) error {
			now := time.Now()
			events, err := hub.PruneEvents(ctx, now.Add(-cfg.EventRetention))
			if err != nil {
				return fmt.Errorf("prune events: %w", err)
			}
			runs, err := sched.PruneRuns(ctx, now.Add(-jobRunRetention))
			if err != nil {
				return fmt.Errorf("prune job runs: %w", err)
			}
			// A challenge expired a day ago is of no use; replaying its
			// signature then meets "no challenge" instead of "used".
			if _, err := accounts.PruneWalletChallenges(ctx, now.Add(-24*time.Hour)); err != nil {
				return fmt.Errorf("prune wallet challenges: %w", err)
			}
			// Likewise a constraint request (the signed sets stay).
			if _, err := db.PruneConstraintRequests(ctx, now.Add(-24*time.Hour)); err != nil {
				return fmt.Errorf("prune constraint requests: %w", err)
			}
			// A budget untouched for a day (the longest window) has
			// refilled: its row is the same as none.
			budgets, err := db.PruneRateBudgets(ctx, now.Add(-rateBudgetRetention))
			if err != nil {
				return fmt.Errorf("prune rate budgets: %w", err)
			}
			// An expired email token is of no use; a link followed after
			// that meets "invalid, used or expired" either way.
			tokens, err := db.PruneEmailTokens(ctx, now.Add(-24*time.Hour))
			if err != nil {
				return fmt.Errorf("prune email tokens: %w", err)
			}
			// A sent mail's body may hold a link's token: it goes once
			// the longest-lived link (verification, 24 h) has expired. A
			// failure stays a week for admins to see.
			mails, err := db.PruneMails(ctx, now.Add(-24*time.Hour), now.Add(-7*24*time.Hour))
			if err != nil {
				return fmt.Errorf("prune mails: %w", err)
			}
			// A mailed alert's row keeps its event from alerting twice:
			// it stays while the event is in the outbox, and a week at
			// least (a risk rise's quiet period is a day).
			alerts, err := db.PruneAlerts(ctx, now.Add(-max(7*24*time.Hour, cfg.EventRetention)))
			if err != nil {
				return fmt.Errorf("prune alerts: %w", err)
			}
			logger.Debug("pruned", "events", events, "job_runs", runs, "rate_budgets", budgets, "email_tokens", tokens,
				"mails", mails, "alerts", alerts)
			return nil
		},
	}}
	jobs = append(jobs, scheduler.Job{
		Name:     "decision-audit",
		Interval: cfg.DecisionAuditInterval,
		Timeout:  auditTimeout,
		Jitter:   cfg.DecisionAuditInterval / 10,
		Run: func(ctx context.Context) error {
			if err := decisions.Audit(ctx); err != nil {
				return err
			}
			// The active risk parameters against the RiskEngine's model
			// version they are mapped to: a mismatch is logged (a
			// warning), an unreachable node is the run's error.
			_, err := markets.CheckDeployedParams(ctx)
			return err
		},
	})
	if markets.SourceName() != "none" {
		// Every job runs once at start, the forecast job too, while the
		// first poll may still be loading the history: so the first poll
		// that succeeds also records forecasts, and a new server has
		// predictions within a minute rather than after an interval.
		var primed atomic.Bool
		jobs = append(jobs, scheduler.Job{
			Name:     "market-ingest",
			Interval: cfg.MarketPollInterval,
			Timeout:  max(minIngestTimeout, cfg.MarketPollInterval),
			Jitter:   cfg.MarketPollInterval / 10,
			Run: func(ctx context.Context) error {
				if err := markets.Poll(ctx); err != nil {
					return err
				}
				if primed.Load() {
					return nil
				}
				// A failure here is the forecast job's to report: the
				// ingestion succeeded and must not back off for it.
				if _, err := advice.RefreshForecasts(ctx); err != nil {
					logger.Warn("first forecasts failed; the forecast job will retry", "error", err)
					return nil
				}
				primed.Store(true)
				return nil
			},
		})
	}
	jobs = append(jobs, adviceJobs(cfg, logger, advice)...)
	jobs = append(jobs, more...)
	// A follower retries, and a leader checks its lease, at least twice per
	// shortest interval, so a crashed leader's jobs resume within two.
	poll := scheduler.DefaultLeaderPoll
	for _, j := range jobs {
		poll = min(poll, j.Interval/2)
	}
	for i := range jobs {
		jobs[i].Run = withJobStatementTimeout(jobs[i])
	}
	// This sets the sched the prune job reads.
	sched, err := scheduler.New(scheduler.Config{Recorder: db, Elector: db, Logger: logger, Observer: observer,
		LeaderPoll: max(poll, 100*time.Millisecond)}, jobs...)
	return sched, err
}

// withJobStatementTimeout returns j's Run with the job's own timeout as
// its statements' bound on the database server, instead of
// DB_STATEMENT_TIMEOUT, which is sized for requests: a job may scan or
// prune more than a request ever should, and its run is bounded anyway.
func withJobStatementTimeout(j scheduler.Job) func(context.Context) error {
	run := j.Run
	return func(ctx context.Context) error { return run(store.WithStatementTimeout(ctx, j.Timeout)) }
}
