// Package mail sends the mails that units of work queue in the store
// (store.Tx.QueueMail): a Sender, run on every instance, claims the due
// mails, hands each to a Transport (an SMTP server through go-mail, or the
// log in development) and records the outcome exactly once: sent, due
// again after a backoff (a temporary error: a 4xx reply, a timeout, a
// refused connection), or given up (a permanent 5xx refusal, or too many
// attempts), which admins see through store.DB.FailedMails.
package mail

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// Queue is what a Sender needs of the store; *store.DB is one.
type Queue interface {
	MailsQueued() <-chan struct{}
	ClaimMails(ctx context.Context, limit int, lease time.Duration) ([]store.Mail, error)
	MarkMailSent(ctx context.Context, id int64, attempt int) error
	RetryMail(ctx context.Context, id int64, attempt int, at time.Time, errText string) error
	FailMail(ctx context.Context, id int64, attempt int, errText string) error
}

// Transport hands one mail on. It returns nil once the mail is accepted,
// and an error that Permanent reports as permanent when retrying the same
// mail cannot succeed; any other error is retried.
type Transport interface {
	Send(ctx context.Context, m store.Mail) error
}

// permanentError marks an error that retrying will not cure.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent reports whether err says that sending the mail again cannot
// succeed (the SMTP server refused it with a 5xx reply).
func Permanent(err error) bool {
	_, ok := errors.AsType[permanentError](err)
	return ok
}

// Config tunes a Sender. Zero fields take their defaults.
type Config struct {
	// PollInterval is how often the Sender looks for due mails besides the
	// commits of this process that queue some: mails queued by other
	// instances, and retries whose backoff has passed (default 5s).
	PollInterval time.Duration
	// SendTimeout bounds one attempt, from the connection to the server's
	// acceptance (default 30s). An attempt under way when the Sender stops
	// finishes within it, so that its outcome is recorded.
	SendTimeout time.Duration
	// Lease is how long a claimed mail is not due again for another claim
	// (default 2m): longer than SendTimeout, so that a mail is sent again
	// only when its sender died.
	Lease time.Duration
	// Backoff is the wait after each temporary failure (default 30s,
	// doubling up to 30m).
	Backoff obsqra.Backoff
	// MaxAttempts is how many attempts a mail gets before it is given up
	// (default 20: about nine hours of a server that does not answer).
	MaxAttempts int
	// Rand draws the backoff's jitter, uniform in [0, 1) (default
	// math/rand/v2's Float64).
	Rand func() float64
	// Now is the clock of the retries (default time.Now).
	Now func() time.Time
	// Logger receives a line for each failed attempt (default
	// slog.Default()).
	Logger *slog.Logger
	// Settled, when set, is called after the outcome of each attempt is
	// recorded, with the mail as claimed and the attempt's error (nil:
	// sent): for tests and metrics.
	Settled func(m store.Mail, err error)
}

// Defaults of Config.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultSendTimeout  = 30 * time.Second
	DefaultLease        = 2 * time.Minute
	DefaultMaxAttempts  = 20
)

// DefaultBackoff is Config.Backoff's default.
var DefaultBackoff = obsqra.Backoff{Base: 30 * time.Second, Max: 30 * time.Minute}

// Sender sends the queued mails of a Queue through a Transport.
type Sender struct {
	queue     Queue
	transport Transport
	cfg       Config
}

// NewSender returns a Sender of q's mails through t; Run starts it.
func NewSender(q Queue, t Transport, cfg Config) *Sender {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = max(DefaultLease, 2*cfg.SendTimeout)
	}
	if cfg.Backoff == (obsqra.Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sender{queue: q, transport: t, cfg: cfg}
}

// Run sends due mails until ctx ends: at once, after each commit of this
// process that queues mail, and every PollInterval. It returns when ctx
// ends, after the attempt under way (bounded by SendTimeout) is recorded.
func (s *Sender) Run(ctx context.Context) {
	poll := time.NewTimer(s.cfg.PollInterval)
	defer poll.Stop()
	for {
		queued := s.queue.MailsQueued() // before the claims: a commit during them closes it
		s.sendDue(ctx)
		poll.Reset(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
			return
		case <-queued:
		case <-poll.C:
		}
	}
}

// sendDue claims and sends due mails one at a time until none is due or
// ctx ends. A store error ends the round; the next poll tries again.
func (s *Sender) sendDue(ctx context.Context) {
	for ctx.Err() == nil {
		mails, err := s.queue.ClaimMails(ctx, 1, s.cfg.Lease)
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Logger.ErrorContext(ctx, "claim mails", "error", err)
			}
			return
		}
		if len(mails) == 0 {
			return
		}
		// The attempt and its record outlive ctx, so that a mail the
		// server accepted during a shutdown is recorded as sent.
		s.send(context.WithoutCancel(ctx), mails[0])
	}
}

// send makes one attempt at m and records its outcome.
func (s *Sender) send(ctx context.Context, m store.Mail) {
	sendCtx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
	err := s.transport.Send(sendCtx, m)
	cancel()
	log := s.cfg.Logger.With("mail_id", m.ID, "kind", m.Kind, "attempt", m.Attempts)
	var recordErr error
	switch {
	case err == nil:
		recordErr = s.queue.MarkMailSent(ctx, m.ID, m.Attempts)
	case Permanent(err) || m.Attempts >= s.cfg.MaxAttempts:
		log.WarnContext(ctx, "mail given up", "error", err)
		recordErr = s.queue.FailMail(ctx, m.ID, m.Attempts, err.Error())
	default:
		at := s.cfg.Now().Add(s.cfg.Backoff.Delay(m.Attempts, s.cfg.Rand))
		log.WarnContext(ctx, "mail attempt failed; retrying", "error", err, "retry_at", at)
		recordErr = s.queue.RetryMail(ctx, m.ID, m.Attempts, at, err.Error())
	}
	if recordErr != nil {
		// ECONFLICT: the lease ran out during the attempt and another
		// claim took the mail over; that claim records it.
		log.ErrorContext(ctx, "record mail attempt", "sent", err == nil, "error", recordErr)
	}
	if s.cfg.Settled != nil {
		s.cfg.Settled(m, err)
	}
}
