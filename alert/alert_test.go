package alert_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/alert"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// start is the tests' first clock reading.
var start = time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)

// bundle is what a test of the service works with.
type bundle struct {
	env *advisortest.Env
	db  *store.DB
	svc *alert.Service
}

// setup returns a service over db with delta as its risk delta and an hour
// between mails, its cursor started at the newest event.
func setup(t *testing.T, db *store.DB, delta int) *bundle {
	t.Helper()
	env := advisortest.New(t, db, start)
	svc, err := alert.New(db, alert.Config{RiskDelta: delta, MinInterval: time.Hour, Secret: []byte("alert tests' secret"),
		PublicAPIURL: "https://api.example", Now: env.Clock.Now})
	if err != nil {
		t.Fatalf("alert.New() = %v", err)
	}
	b := &bundle{env: env, db: db, svc: svc}
	b.collect(t, 0)
	return b
}

// user stores a user with a verified address or not, alerts on or off.
func (b *bundle) user(t *testing.T, email string, verified, alerts bool) *obsqra.User {
	t.Helper()
	ctx := context.Background()
	u := &obsqra.User{Email: email, PasswordHash: "x", Role: obsqra.RoleUser, Active: true,
		EmailVerified: verified, Preferences: obsqra.DefaultPreferences()}
	u.Preferences.EmailAlerts = alerts
	if err := b.db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
		t.Fatalf("CreateUser(%s) = %v", email, err)
	}
	return u
}

// hold records an allocation of all of u's funds in protocol.
func (b *bundle) hold(t *testing.T, u *obsqra.User, protocol int64) {
	t.Helper()
	ctx := context.Background()
	a := &obsqra.Allocation{UserID: u.ID, Weights: []obsqra.Weight{{ProtocolID: protocol, WeightBps: 10000}}, Reason: obsqra.ReasonUserInitiated}
	if err := b.db.WithTx(ctx, func(tx *store.Tx) error { return tx.InsertAllocation(ctx, a) }); err != nil {
		t.Fatalf("InsertAllocation() = %v", err)
	}
}

// appendEvent appends e in its own unit of work.
func (b *bundle) appendEvent(t *testing.T, e *obsqra.Event, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	ctx := context.Background()
	if err := b.db.WithTx(ctx, func(tx *store.Tx) error { return tx.AppendEvent(ctx, e) }); err != nil {
		t.Fatalf("AppendEvent(%s) = %v", e.Topic, err)
	}
}

// suggest appends the event of a suggestion for u.
func (b *bundle) suggest(t *testing.T, u *obsqra.User, id int64, clears bool) {
	t.Helper()
	b.suggestFrom(t, u, id, "", clears)
}

// suggestFrom appends the event of a suggestion for u decided from inputs
// of the given digest.
func (b *bundle) suggestFrom(t *testing.T, u *obsqra.User, id int64, digest string, clears bool) {
	t.Helper()
	details, _ := json.Marshal(obsqra.RebalanceSuggestion{AllocationID: 1, ClearsThreshold: clears, ThresholdBps: 50,
		ExpectedImprovementBps: 120, CostUsd: obsqra.MustDecimal("3.5"),
		Trades: []obsqra.RebalanceTrade{{ProtocolID: 1, FromBps: 10000, ToBps: 0, AmountUsd: obsqra.MustDecimal("-100")}}})
	e, err := obsqra.PredictionCreatedEvent(&obsqra.Prediction{ID: id, Kind: obsqra.PredictionRebalanceSuggestion,
		UserID: u.ID, HorizonDays: 30, InputsDigest: digest, Details: details})
	b.appendEvent(t, e, err)
}

// transaction appends the event of u's transaction id as it now stands.
func (b *bundle) transaction(t *testing.T, u *obsqra.User, id int64, status obsqra.TxStatus, exec obsqra.ExecutionStatus, reason string) {
	t.Helper()
	hash, err := obsqra.ParseFelt("0xabc")
	if err != nil {
		t.Fatal(err)
	}
	tr := &obsqra.Transaction{ID: id, UserID: u.ID, TxHash: hash, Type: obsqra.TxDeposit, Amount: obsqra.MustDecimal("100"),
		Token: "USDC", Status: status}
	if exec != "" {
		tr.ExecutionStatus = &exec
	}
	if reason != "" {
		tr.FailureReason = &reason
	}
	e, err := obsqra.TransactionUpdatedEvent(tr)
	b.appendEvent(t, e, err)
}

// collect runs Collect and checks it recorded want alerts.
func (b *bundle) collect(t *testing.T, want int) {
	t.Helper()
	if n, err := b.svc.Collect(context.Background()); err != nil || n != want {
		t.Fatalf("Collect() = %d, %v, want %d, nil", n, err, want)
	}
}

// digest runs Digest and returns the mails it queued.
func (b *bundle) digest(t *testing.T) []store.Mail {
	t.Helper()
	ctx := context.Background()
	n, err := b.svc.Digest(ctx)
	if err != nil {
		t.Fatalf("Digest() = %v", err)
	}
	mails, err := b.db.ClaimMails(ctx, 100, time.Minute)
	if err != nil {
		t.Fatalf("ClaimMails() = %v", err)
	}
	if len(mails) != n {
		t.Fatalf("Digest() = %d, but %d mails are queued", n, len(mails))
	}
	for _, m := range mails {
		if err := b.db.MarkMailSent(ctx, m.ID, m.Attempts); err != nil {
			t.Fatalf("MarkMailSent() = %v", err)
		}
	}
	return mails
}

func TestAlertsOnceEach(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		b := setup(t, db, 10)
		on := b.user(t, "on@example.com", true, true)
		unverified := b.user(t, "unverified@example.com", false, true)
		off := b.user(t, "off@example.com", true, false)

		for _, u := range []*obsqra.User{on, unverified, off} {
			b.suggest(t, u, 100+u.ID, true)
			b.suggest(t, u, 200+u.ID, false) // below the threshold
			b.transaction(t, u, 300+u.ID, obsqra.TxDropped, "", "")
			b.transaction(t, u, 400+u.ID, obsqra.TxAcceptedOnL2, obsqra.ExecReverted, "out of gas")
			b.transaction(t, u, 500+u.ID, obsqra.TxAcceptedOnL2, obsqra.ExecSucceeded, "")
		}
		b.collect(t, 3) // on's suggestion, dropped and reverted transactions

		t.Run("second run", func(t *testing.T) { b.collect(t, 0) })
		t.Run("identical events", func(t *testing.T) {
			b.suggest(t, on, 100+on.ID, true)
			b.transaction(t, on, 300+on.ID, obsqra.TxDropped, "", "")
			b.transaction(t, on, 400+on.ID, obsqra.TxAcceptedOnL1, obsqra.ExecReverted, "out of gas")
			b.collect(t, 0)
		})
		t.Run("same inputs", func(t *testing.T) {
			b.suggestFrom(t, on, 900, "d1", true)
			b.suggestFrom(t, on, 901, "d1", true) // recorded again from the same inputs
			b.suggestFrom(t, on, 902, "d2", true)
			b.collect(t, 2)
		})
		t.Run("replay", func(t *testing.T) {
			if err := storetest.Exec(t, db, "UPDATE alert_state SET event_id = 0"); err != nil {
				t.Fatalf("rewind the cursor: %v", err)
			}
			b.collect(t, 0)
		})
		t.Run("one digest", func(t *testing.T) {
			mails := b.digest(t)
			if len(mails) != 1 {
				t.Fatalf("Digest() queued %d mails, want 1 (for %s)", len(mails), on.Email)
			}
			m := mails[0]
			if m.Recipient != on.Email || m.Kind != alert.MailKind || m.Subject != "Obsqra: 5 alerts" {
				t.Errorf("mail = to %q, kind %q, subject %q, want to %q, kind %q, 5 alerts", m.Recipient, m.Kind, m.Subject, on.Email, alert.MailKind)
			}
			want := "https://api.example/unsubscribe?token=" + b.svc.Token(on.ID)
			if m.ListUnsubscribe != want || !strings.Contains(m.Text, want) {
				t.Errorf("mail's ListUnsubscribe = %q, want %q in it and in the text", m.ListUnsubscribe, want)
			}
			for _, s := range []string{"rebalance", "was dropped", "was reverted: out of gas"} {
				if !strings.Contains(m.Text, s) || !strings.Contains(m.HTML, s) {
					t.Errorf("mail lacks %q:\n%s\n%s", s, m.Text, m.HTML)
				}
			}
			if mails := b.digest(t); len(mails) != 0 {
				t.Errorf("Digest() again = %d mails, want none", len(mails))
			}
		})
	})
}

func TestAlertDigestInterval(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		b := setup(t, db, 10)
		u := b.user(t, "digest@example.com", true, true)

		b.transaction(t, u, 1, obsqra.TxDropped, "", "")
		b.collect(t, 1)
		if mails := b.digest(t); len(mails) != 1 || mails[0].Subject != "Obsqra: 1 alert" {
			t.Fatalf("first digest = %+v, want one mail of one alert", mails)
		}
		b.env.Clock.Advance(10 * time.Minute)
		b.transaction(t, u, 2, obsqra.TxAcceptedOnL2, obsqra.ExecReverted, `<script>alert("x")</script>`)
		b.suggest(t, u, 3, true)
		b.collect(t, 2)
		if mails := b.digest(t); len(mails) != 0 {
			t.Fatalf("digest 10 min after a mail = %d mails, want none within the interval", len(mails))
		}
		b.env.Clock.Advance(50 * time.Minute)
		mails := b.digest(t)
		if len(mails) != 1 || mails[0].Subject != "Obsqra: 2 alerts" {
			t.Fatalf("digest an hour after the mail = %+v, want one mail of two alerts", mails)
		}
		if html := mails[0].HTML; strings.Contains(html, "<script>") || !strings.Contains(html, "&lt;script&gt;") {
			t.Errorf("HTML part = %s, want the failure reason escaped", html)
		}
		if !strings.Contains(mails[0].Text, `<script>alert("x")</script>`) {
			t.Errorf("text part = %s, want the failure reason as it is", mails[0].Text)
		}
	})
}

func TestAlertsOffBeforeDigest(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, db, 10)
		u := b.user(t, "late@example.com", true, true)
		b.transaction(t, u, 1, obsqra.TxDropped, "", "")
		b.collect(t, 1)
		if err := b.svc.Unsubscribe(ctx, b.svc.Token(u.ID)); err != nil {
			t.Fatalf("Unsubscribe() = %v", err)
		}
		if mails := b.digest(t); len(mails) != 0 {
			t.Errorf("digest after unsubscribing = %d mails, want none", len(mails))
		}
	})
}

// riskShape is a market whose utilization, and so risk, is high or low.
func riskShape(high bool) advisortest.Shape {
	return func(obsqra.Date) (int, int, string) {
		if high {
			return 900, 9800, "1000000"
		}
		return 500, 1000, "500000000"
	}
}

// score ingests a sample of slug at at, of a risky market or not, with
// the clock just after it, and returns its score.
func (b *bundle) score(t *testing.T, slug string, at time.Time, high bool) int {
	t.Helper()
	b.env.Clock.Set(at.Add(time.Minute))
	apy, util, tvl := riskShape(high)(0)
	in := advisortest.Sample(slug, obsqra.DateOf(at), apy, util, tvl)
	in.ObservedAt = at
	return b.env.Ingest(t, in)[0].Risk.Score
}

func TestRiskRiseAlerts(t *testing.T) {
	t.Parallel()
	// The rise the two markets of riskShape make, on a database of its own.
	probe := setup(t, storetest.SQLite(t), 10)
	day := start.Truncate(24 * time.Hour)
	slug := "nostra"
	low := probe.score(t, slug, day.Add(-12*time.Hour), false)
	rise := probe.score(t, slug, day.Add(12*time.Hour), true) - low
	if rise < 2 {
		t.Fatalf("riskShape rises the score by %d, want at least 2", rise)
	}

	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		// Any rise alerts: the later rises of riskShape's markets are
		// smaller than the first (the history's volatility grows).
		b := setup(t, db, 1)
		p := b.env.ID(t, slug)
		holder := b.user(t, "holder@example.com", true, true)
		unverified := b.user(t, "unverified@example.com", false, true)
		off := b.user(t, "off@example.com", true, false)
		other := b.user(t, "other@example.com", true, true)
		for _, u := range []*obsqra.User{holder, unverified, off} {
			b.hold(t, u, p)
		}
		b.hold(t, other, b.env.ID(t, "zklend"))

		b.score(t, slug, day.Add(-12*time.Hour), false)
		b.score(t, slug, day.Add(12*time.Hour), true)
		b.collect(t, 1) // the holder's only

		t.Run("again within 24 h", func(t *testing.T) {
			b.score(t, slug, day.Add(13*time.Hour), false)
			b.score(t, slug, day.Add(14*time.Hour), true)
			b.collect(t, 0)
		})
		t.Run("after 24 h", func(t *testing.T) {
			low := b.score(t, slug, day.Add(36*time.Hour), false)
			if high := b.score(t, slug, day.Add(37*time.Hour), true); high <= low {
				t.Fatalf("scores %d then %d, want a rise", low, high)
			}
			b.collect(t, 1)
		})
		t.Run("steady", func(t *testing.T) {
			b.score(t, slug, day.Add(72*time.Hour), true)
			b.collect(t, 0)
		})
		mails := b.digest(t)
		if len(mails) != 1 || mails[0].Recipient != holder.Email || !strings.Contains(mails[0].Text, "risk score of nostra") {
			t.Errorf("digest = %+v, want one mail to %s about nostra", mails, holder.Email)
		}
	})

	t.Run("history", func(t *testing.T) {
		t.Parallel()
		storetest.Each(t, func(t *testing.T, db *store.DB) {
			t.Parallel()
			b := setup(t, db, 1)
			b.hold(t, b.user(t, "holder@example.com", true, true), b.env.ID(t, slug))
			b.score(t, slug, day.Add(-12*time.Hour), false)
			b.score(t, slug, day.Add(12*time.Hour), true)
			// Read two days later, as history loaded or imported.
			b.env.Clock.Set(day.Add(60 * time.Hour))
			b.collect(t, 0)
		})
	})
	t.Run("below the delta", func(t *testing.T) {
		t.Parallel()
		storetest.Each(t, func(t *testing.T, db *store.DB) {
			t.Parallel()
			b := setup(t, db, rise+1)
			b.hold(t, b.user(t, "holder@example.com", true, true), b.env.ID(t, slug))
			b.score(t, slug, day.Add(-12*time.Hour), false)
			b.score(t, slug, day.Add(12*time.Hour), true)
			b.collect(t, 0)
		})
	})
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		b := setup(t, db, 10)
		ada := b.user(t, "ada@example.com", true, true)
		bob := b.user(t, "bob@example.com", true, true)
		alerts := func(u *obsqra.User) bool {
			got, err := db.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatalf("UserByID() = %v", err)
			}
			return got.Preferences.EmailAlerts
		}
		token := b.svc.Token(ada.ID)
		forged, err := alert.New(db, alert.Config{Secret: []byte("another secret"), PublicAPIURL: "https://x"})
		if err != nil {
			t.Fatal(err)
		}
		tampered := []byte(token)
		tampered[len(tampered)-3] ^= 1
		for name, bad := range map[string]string{
			"empty": "", "garbage": "not a token!", "tampered": string(tampered),
			"truncated": token[:len(token)-4], "forged": forged.Token(ada.ID),
			"other user's id": b.svc.Token(bob.ID)[:11] + token[11:],
		} {
			if err := b.svc.Unsubscribe(ctx, bad); obsqra.ErrorCode(err) != obsqra.EINVALID {
				t.Errorf("Unsubscribe(%s) = %v, want %s", name, err, obsqra.EINVALID)
			}
		}
		if !alerts(ada) || !alerts(bob) {
			t.Fatalf("alerts after bad tokens = %v, %v, want both on", alerts(ada), alerts(bob))
		}
		last := b.env.LastEvent(t)
		for range 2 {
			if err := b.svc.Unsubscribe(ctx, token); err != nil {
				t.Fatalf("Unsubscribe(ada's token) = %v, want nil", err)
			}
		}
		if alerts(ada) || !alerts(bob) {
			t.Errorf("alerts after ada's token = %v, %v, want off, on", alerts(ada), alerts(bob))
		}
		if events := b.env.Events(t, last, obsqra.TopicAccountChanged); len(events) != 1 || events[0].OwnerID != ada.ID {
			t.Errorf("account events = %+v, want one of ada's", events)
		}
	})
}
