package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// newMail returns a mail to queue, with every field a sender reads.
func newMail(to string) *store.Mail {
	return &store.Mail{Kind: "verify_email", Recipient: to, Subject: "Verify your email",
		Text: "Open https://app.example/verify-email?token=t", HTML: "<p>Open <a href=\"https://app.example/verify-email?token=t\">this</a></p>"}
}

// queueMails queues mails in one unit of work.
func queueMails(t *testing.T, db *store.DB, mails ...*store.Mail) {
	t.Helper()
	err := db.WithTx(context.Background(), func(tx *store.Tx) error {
		for _, m := range mails {
			if err := tx.QueueMail(context.Background(), m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("QueueMail = %v, want nil", err)
	}
}

func TestQueueMail(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)

		t.Run("invalid", func(t *testing.T) {
			for _, m := range []*store.Mail{
				{Kind: "k", Recipient: "a@example.com", Subject: "s"},
				{Kind: "k", Recipient: "a@example.com\r\nBcc: b@example.com", Subject: "s", Text: "t"},
				{Kind: "k", Recipient: "a@example.com", Subject: "s\nBcc: b@example.com", Text: "t"},
			} {
				err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.QueueMail(ctx, m) })
				wantCode(t, "QueueMail("+strings.ReplaceAll(m.Recipient+" "+m.Subject, "\n", `\n`)+")", err, obsqra.EINVALID)
			}
		})

		t.Run("rolled back", func(t *testing.T) {
			queued := db.MailsQueued()
			rollback := errors.New("rollback")
			err := db.WithTx(ctx, func(tx *store.Tx) error {
				if err := tx.QueueMail(ctx, newMail("gone@example.com")); err != nil {
					return err
				}
				return rollback
			})
			if !errors.Is(err, rollback) {
				t.Fatalf("WithTx = %v, want the rollback", err)
			}
			select {
			case <-queued:
				t.Fatal("MailsQueued closed by a rolled-back unit of work")
			default:
			}
			if got, err := db.ClaimMails(ctx, 10, time.Minute); err != nil || len(got) != 0 {
				t.Fatalf("ClaimMails after a rollback = %v, %v, want none", got, err)
			}
		})

		t.Run("committed", func(t *testing.T) {
			queued := db.MailsQueued()
			m := newMail("a@example.com")
			m.ListUnsubscribe = "https://app.example/unsubscribe?token=u"
			queueMails(t, db, m)
			select {
			case <-queued:
			default:
				t.Fatal("MailsQueued not closed by the commit that queued a mail")
			}
			got, err := db.Mail(ctx, m.ID)
			if err != nil {
				t.Fatalf("Mail(%d) = %v", m.ID, err)
			}
			want := *m
			want.CreatedAt, want.NextAttemptAt = stampUTC(testTime), stampUTC(testTime)
			if got.ID == 0 || !mailEqual(got, want) {
				t.Fatalf("Mail(%d) = %+v, want %+v", m.ID, got, want)
			}
			if _, err := db.Mail(ctx, m.ID+1000); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
				t.Fatalf("Mail(missing) = %v, want ENOTFOUND", err)
			}
		})
	})
}

// mailEqual compares mails field by field, times by instant.
func mailEqual(a, b store.Mail) bool {
	sameTime := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return a.ID == b.ID && a.Kind == b.Kind && a.Recipient == b.Recipient && a.Subject == b.Subject && a.Text == b.Text &&
		a.HTML == b.HTML && a.ListUnsubscribe == b.ListUnsubscribe && a.CreatedAt.Equal(b.CreatedAt) && a.Attempts == b.Attempts &&
		a.NextAttemptAt.Equal(b.NextAttemptAt) && sameTime(a.SentAt, b.SentAt) && sameTime(a.FailedAt, b.FailedAt) &&
		a.LastError == b.LastError
}

// TestMailLifecycle follows mails through claims, leases, retries, sends
// and failures, with the store's clock in the test's hands.
func TestMailLifecycle(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		now := testTime
		db.Now = func() time.Time { return now }
		a, b, c := newMail("a@example.com"), newMail("b@example.com"), newMail("c@example.com")
		queueMails(t, db, a, b)
		now = now.Add(time.Second)
		queueMails(t, db, c)

		claim := func(limit int) []store.Mail {
			t.Helper()
			got, err := db.ClaimMails(ctx, limit, time.Minute)
			if err != nil {
				t.Fatalf("ClaimMails(%d) = %v", limit, err)
			}
			return got
		}
		ids := func(ms []store.Mail) (out []int64) {
			for _, m := range ms {
				out = append(out, m.ID)
			}
			return out
		}

		if _, err := db.ClaimMails(ctx, 0, time.Minute); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Fatalf("ClaimMails(0) = %v, want EINVALID", err)
		}
		first := claim(2)
		if got := ids(first); len(got) != 2 || got[0] != a.ID || got[1] != b.ID || first[0].Attempts != 1 {
			t.Fatalf("first claim = %v (attempts %d), want [%d %d] at attempt 1", got, first[0].Attempts, a.ID, b.ID)
		}
		if got := ids(claim(10)); len(got) != 1 || got[0] != c.ID {
			t.Fatalf("second claim = %v, want only [%d]: the others are leased", got, c.ID)
		}
		if got := claim(10); len(got) != 0 {
			t.Fatalf("third claim = %v, want none", ids(got))
		}

		// a is sent; b's sender dies, and its lease runs out.
		if err := db.MarkMailSent(ctx, a.ID, 1); err != nil {
			t.Fatalf("MarkMailSent(a, 1) = %v", err)
		}
		now = now.Add(time.Minute + time.Second)
		again := claim(10)
		if got := ids(again); len(got) != 2 || got[0] != b.ID || got[1] != c.ID || again[0].Attempts != 2 {
			t.Fatalf("claim after the leases = %v (attempts %d), want [%d %d] at attempt 2", got, again[0].Attempts, b.ID, c.ID)
		}
		// The dead sender's claim of b can record nothing now.
		wantCode(t, "MarkMailSent(b, stale claim)", db.MarkMailSent(ctx, b.ID, 1), obsqra.ECONFLICT)
		wantCode(t, "MarkMailSent(a, again)", db.MarkMailSent(ctx, a.ID, 1), obsqra.ECONFLICT)

		// b fails for now and is due again later; c is refused for good.
		retryAt := now.Add(30 * time.Second)
		if err := db.RetryMail(ctx, b.ID, 2, retryAt, "451 try again later"); err != nil {
			t.Fatalf("RetryMail(b) = %v", err)
		}
		if err := db.FailMail(ctx, c.ID, 2, "550 no such user "+strings.Repeat("x", 2000)); err != nil {
			t.Fatalf("FailMail(c) = %v", err)
		}
		wantCode(t, "RetryMail(c, after FailMail)", db.RetryMail(ctx, c.ID, 2, retryAt, "x"), obsqra.ECONFLICT)
		if got := claim(10); len(got) != 0 {
			t.Fatalf("claim before the retry = %v, want none", ids(got))
		}
		now = retryAt
		last := claim(10)
		if got := ids(last); len(got) != 1 || got[0] != b.ID || last[0].Attempts != 3 || last[0].LastError != "451 try again later" {
			t.Fatalf("claim at the retry = %+v, want b at attempt 3 with its last error", last)
		}
		if err := db.MarkMailSent(ctx, b.ID, 3); err != nil {
			t.Fatalf("MarkMailSent(b, 3) = %v", err)
		}
		now = now.Add(time.Hour)
		if got := claim(10); len(got) != 0 {
			t.Fatalf("claim at the end = %v, want none", ids(got))
		}

		sentA, err := db.Mail(ctx, a.ID)
		if err != nil || sentA.SentAt == nil || sentA.FailedAt != nil || sentA.Attempts != 1 {
			t.Fatalf("Mail(a) = %+v, %v, want sent at attempt 1", sentA, err)
		}
		failed, err := db.FailedMails(ctx, 10)
		if err != nil || len(failed) != 1 || failed[0].ID != c.ID || failed[0].FailedAt == nil || failed[0].SentAt != nil {
			t.Fatalf("FailedMails = %+v, %v, want c alone, failed", failed, err)
		}
		if e := failed[0].LastError; len(e) != 1000 || !strings.HasPrefix(e, "550 no such user") {
			t.Fatalf("FailedMails()[0].LastError has %d bytes (%.20q…), want the error cut to 1000", len(e), e)
		}
		if _, err := db.FailedMails(ctx, 0); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Fatalf("FailedMails(0) = %v, want EINVALID", err)
		}

		// Pruning: a was sent before b, and c failed; what is still due is
		// never pruned.
		sentB, err := db.Mail(ctx, b.ID)
		if err != nil || sentB.SentAt == nil {
			t.Fatalf("Mail(b) = %+v, %v", sentB, err)
		}
		if n, err := db.PruneMails(ctx, *sentB.SentAt, *failed[0].FailedAt); err != nil || n != 1 {
			t.Fatalf("PruneMails(before b's send, at c's failure) = %d, %v; want a alone", n, err)
		}
		if _, err := db.Mail(ctx, a.ID); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
			t.Errorf("Mail(a) after pruning = %v, want ENOTFOUND", err)
		}
		d := newMail("d@example.com")
		queueMails(t, db, d)
		far := now.Add(24 * time.Hour)
		if n, err := db.PruneMails(ctx, far, far); err != nil || n != 2 {
			t.Fatalf("PruneMails(later) = %d, %v; want b and c, not the due d", n, err)
		}
		if _, err := db.Mail(ctx, d.ID); err != nil {
			t.Errorf("the due mail was pruned: %v", err)
		}
	})
}

// TestClaimMailsConcurrently has several senders claim from one queue at
// once: every mail is claimed by exactly one of them.
func TestClaimMailsConcurrently(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		const mails, senders = 60, 6
		var queued []*store.Mail
		for i := range mails {
			queued = append(queued, newMail(strings.Repeat("a", i+1)+"@example.com"))
		}
		queueMails(t, db, queued...)

		var mu sync.Mutex
		claimed := map[int64]int{}
		var wg sync.WaitGroup
		for range senders {
			wg.Go(func() {
				for {
					got, err := db.ClaimMails(ctx, 3, time.Hour)
					if err != nil {
						t.Errorf("ClaimMails = %v", err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, m := range got {
						claimed[m.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != mails {
			t.Fatalf("%d mails claimed, want %d", len(claimed), mails)
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("mail %d claimed %d times, want once", id, n)
			}
		}
	})
}
