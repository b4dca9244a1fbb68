package store

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/obsqra/obsqra"
)

// Mail is one outgoing mail in the queue (the mails table): what it says,
// to whom, and how far its sending has come. Package mail sends it; the
// change that causes it queues it in its own unit of work (QueueMail).
type Mail struct {
	// ID is the mail's id, set by QueueMail.
	ID int64
	// Kind names what the mail is for ("verify_email", "reset_password",
	// an alert's kind…), for logs and the admins' list of failures.
	Kind string
	// Recipient is the address the mail goes to.
	Recipient string
	// Subject is the mail's subject line.
	Subject string
	// Text is the plain-text body; every mail has one.
	Text string
	// HTML is the HTML alternative of Text; "" for a plain-text mail.
	HTML string
	// ListUnsubscribe, when set, is the https URL of a one-click
	// unsubscribe (RFC 8058): the mail then carries List-Unsubscribe with
	// it and List-Unsubscribe-Post. Alerts set it; account mails do not.
	ListUnsubscribe string
	// CreatedAt is when the mail was queued, set by QueueMail.
	CreatedAt time.Time
	// Attempts counts the claims of the mail so far. A claimed mail
	// carries the number of its own claim, which MarkMailSent, RetryMail
	// and FailMail take back as the claim's token.
	Attempts int
	// NextAttemptAt is when the mail is next due: at first when it was
	// queued, then the end of a claim's lease or of a retry's backoff.
	NextAttemptAt time.Time
	// SentAt is when the SMTP server accepted the mail, nil until then.
	SentAt *time.Time
	// FailedAt is when the sender gave up on the mail, nil unless it did.
	FailedAt *time.Time
	// LastError is the error of the last attempt that failed, "" if none.
	LastError string
}

// mailColumns are the columns of a Mail, in the order scanMail reads them.
var mailColumns = columns("", "id", "kind", "recipient", "subject", "text_body", "html_body", "list_unsubscribe",
	"created_at", "attempts", "next_attempt_at", "sent_at", "failed_at", "last_error")

// scanMail reads a row of mailColumns into m.
func scanMail(scan func(dest ...any) error, m *Mail) error {
	return scan(&m.ID, &m.Kind, &m.Recipient, &m.Subject, &m.Text, &m.HTML, textScanner{&m.ListUnsubscribe},
		scanTime(&m.CreatedAt), &m.Attempts, scanTime(&m.NextAttemptAt), scanNullTime(&m.SentAt),
		scanNullTime(&m.FailedAt), textScanner{&m.LastError})
}

// maxMailError bounds the stored text of an attempt's error, in bytes: an
// SMTP server's reply is a line or two, and nothing more is worth keeping.
const maxMailError = 1000

// QueueMail adds m to the mail queue in this unit of work, so the mail is
// sent if and only if the change that causes it commits; the commit wakes
// the senders of this process (MailsQueued). It sets m.ID, m.CreatedAt and
// m.NextAttemptAt (now: due at once) and clears the sending state.
// Errors: EINVALID when Kind, Recipient, Subject or Text is empty, or the
// recipient or subject holds a line break (a header injection); otherwise
// internal ones.
func (tx *Tx) QueueMail(ctx context.Context, m *Mail) error {
	switch {
	case m.Kind == "" || m.Recipient == "" || m.Subject == "" || m.Text == "":
		return obsqra.Errorf(obsqra.EINVALID, "a mail needs a kind, a recipient, a subject and a text body")
	case strings.ContainsAny(m.Recipient+m.Subject+m.ListUnsubscribe, "\r\n"):
		return obsqra.Errorf(obsqra.EINVALID, "a mail's recipient, subject and unsubscribe URL may not hold line breaks")
	}
	c := tx.conn()
	now := tx.now()
	err := c.queryRow(ctx, `
		INSERT INTO mails (kind, recipient, subject, text_body, html_body, list_unsubscribe, created_at, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		m.Kind, m.Recipient, m.Subject, m.Text, m.HTML, textArg(m.ListUnsubscribe), c.d.timeArg(now), c.d.timeArg(now)).Scan(&m.ID)
	if err != nil {
		return translate(err, "queue mail", "mail")
	}
	m.CreatedAt, m.NextAttemptAt = now, now
	m.Attempts, m.SentAt, m.FailedAt, m.LastError = 0, nil, nil, ""
	tx.mailsQueued++
	return nil
}

// MailsQueued returns a channel that is closed when a unit of work of this
// process that queued mails next commits (not on a rollback). A sender
// takes the channel, claims the due mails, then waits on it: a commit in
// between closed a channel it already holds. Mails queued by other
// processes sharing a PostgreSQL database do not close it: a sender polls
// for those too.
func (db *DB) MailsQueued() <-chan struct{} { return db.mailsQueued.wait() }

// ClaimMails claims at most limit due mails (neither sent nor given up,
// NextAttemptAt passed), the earliest due first, for lease: each is
// counted one more attempt and is not due again until the lease ends, so
// no other sender claims it meanwhile (on PostgreSQL, rows another
// sender's claim has locked are skipped, FOR UPDATE SKIP LOCKED; on SQLite
// units of work run one at a time). The claimer then records the outcome
// with MarkMailSent, RetryMail or FailMail, passing the returned Attempts
// as its claim's token; if it never does (the process died), the mail is
// due again once the lease ends. The mails come back in id order.
// Errors: EINVALID for a limit below 1 or a lease that is not positive;
// otherwise internal ones.
func (db *DB) ClaimMails(ctx context.Context, limit int, lease time.Duration) ([]Mail, error) {
	if limit < 1 || lease <= 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "claim mails: limit must be at least 1 and lease positive, got %d and %s", limit, lease)
	}
	var mails []Mail
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		now := tx.now()
		rows, err := c.query(ctx, `
			UPDATE mails SET attempts = attempts + 1, next_attempt_at = ?
			WHERE id IN (
				SELECT id FROM mails
				WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?
				ORDER BY next_attempt_at, id LIMIT ?`+c.d.skipLocked+`)
			RETURNING `+mailColumns,
			c.d.timeArg(now.Add(lease)), c.d.timeArg(now), limit)
		if err != nil {
			return translate(err, "claim mails", "mail")
		}
		defer rows.Close()
		for rows.Next() {
			var m Mail
			if err := scanMail(rows.Scan, &m); err != nil {
				return translate(err, "scan mail", "mail")
			}
			mails = append(mails, m)
		}
		return translate(rows.Err(), "claim mails", "mail")
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(mails, func(a, b Mail) int { return int(a.ID - b.ID) })
	return mails, nil
}

// MarkMailSent records that the SMTP server accepted mail id, claimed as
// attempt: the mail is never due again.
// Errors: ECONFLICT when that claim is no longer the mail's (its lease ran
// out and another sender claimed it, or its outcome is recorded already);
// otherwise internal ones.
func (db *DB) MarkMailSent(ctx context.Context, id int64, attempt int) error {
	return db.settleMail(ctx, "mark mail sent", id, attempt, "sent_at = ?", db.dialect.timeArg(db.now()))
}

// RetryMail records that attempt of mail id failed with a temporary
// error, errText, and makes the mail due again at at.
// Errors: ECONFLICT when that claim is no longer the mail's; otherwise
// internal ones.
func (db *DB) RetryMail(ctx context.Context, id int64, attempt int, at time.Time, errText string) error {
	return db.settleMail(ctx, "retry mail", id, attempt, "next_attempt_at = ?, last_error = ?",
		db.dialect.timeArg(at), clipText(errText, maxMailError))
}

// FailMail records that the sender gave up on mail id after attempt, with
// errText (a permanent refusal, or too many attempts): the mail is never
// due again, and FailedMails lists it.
// Errors: ECONFLICT when that claim is no longer the mail's; otherwise
// internal ones.
func (db *DB) FailMail(ctx context.Context, id int64, attempt int, errText string) error {
	return db.settleMail(ctx, "fail mail", id, attempt, "failed_at = ?, last_error = ?",
		db.dialect.timeArg(db.now()), clipText(errText, maxMailError))
}

// settleMail sets the columns of set (assignments with ? placeholders,
// whose arguments are args) on mail id if attempt is still its claim.
func (db *DB) settleMail(ctx context.Context, op string, id int64, attempt int, set string, args ...any) error {
	return db.WithTx(ctx, func(tx *Tx) error {
		n, err := tx.conn().execCount(ctx,
			"UPDATE mails SET "+set+" WHERE id = ? AND attempts = ? AND sent_at IS NULL AND failed_at IS NULL",
			append(args, id, attempt)...)
		if err != nil {
			return translate(err, op, "mail")
		}
		if n == 0 {
			return obsqra.Errorf(obsqra.ECONFLICT, "%s: mail %d is no longer claimed as attempt %d", op, id, attempt)
		}
		return nil
	})
}

// clipText returns s cut to at most n bytes, on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// FailedMails returns at most limit mails the sender gave up on, the
// latest first, each with its last error: what admins see of mail that
// did not go out.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) FailedMails(ctx context.Context, limit int) ([]Mail, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	rows, err := db.conn().query(ctx,
		"SELECT "+mailColumns+" FROM mails WHERE failed_at IS NOT NULL ORDER BY failed_at DESC, id DESC LIMIT ?", limit)
	if err != nil {
		return nil, translate(err, "list failed mails", "mail")
	}
	defer rows.Close()
	var mails []Mail
	for rows.Next() {
		var m Mail
		if err := scanMail(rows.Scan, &m); err != nil {
			return nil, translate(err, "scan mail", "mail")
		}
		mails = append(mails, m)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list failed mails", "row")
	}
	return mails, nil
}

// Mail returns mail id, whatever its state.
// Errors: ENOTFOUND when there is no such mail; otherwise internal ones.
func (db *DB) Mail(ctx context.Context, id int64) (Mail, error) {
	var m Mail
	row := db.conn().queryRow(ctx, "SELECT "+mailColumns+" FROM mails WHERE id = ?", id)
	if err := scanMail(row.Scan, &m); err != nil {
		return Mail{}, translate(err, "read mail", "mail")
	}
	return m, nil
}

// PruneMails deletes the mails sent before sentBefore and those given up
// on before failedBefore, and returns how many it deleted: a sent mail's
// body may hold a link's token, so it is not kept once its links have
// expired; a failure is kept longer, for admins to see.
// Errors: only internal ones.
func (db *DB) PruneMails(ctx context.Context, sentBefore, failedBefore time.Time) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var err error
		n, err = c.execCount(ctx, "DELETE FROM mails WHERE (sent_at IS NOT NULL AND sent_at < ?) OR (failed_at IS NOT NULL AND failed_at < ?)",
			c.d.timeArg(sentBefore), c.d.timeArg(failedBefore))
		return translate(err, "prune mails", "mail")
	})
	return n, err
}

// LatestMailAt returns when the latest mail of kind to recipient was
// queued, or the zero time when there is none (or it was pruned): how the
// mails a stranger can trigger without a token are capped per recipient.
// Errors: only internal ones.
func (tx *Tx) LatestMailAt(ctx context.Context, kind, recipient string) (time.Time, error) {
	c := tx.conn()
	var at *time.Time
	err := c.queryRow(ctx, "SELECT MAX(created_at) FROM mails WHERE kind = ? AND recipient = ?", kind, recipient).Scan(scanNullTime(&at))
	if err != nil {
		return time.Time{}, translate(err, "read latest mail", "mail")
	}
	if at == nil {
		return time.Time{}, nil
	}
	return *at, nil
}
