// This file holds the protocols: the table's use cases and the
// snapshot subscriptions resolve their protocol from.

package market

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// protocolSnapshot is ProtocolsByID's read model of the protocols table.
type protocolSnapshot struct {
	mu   sync.Mutex
	byID map[int64]*obsqra.Protocol // nil when none is valid
	at   time.Time                  // when the read of byID began
	// gen counts invalidations: a read that began before one is not kept.
	gen uint64
	// loading is closed when the read in progress ends; nil when none is.
	loading chan struct{}
}

// Protocols returns every protocol, ordered by slug.
// Errors: only internal ones.
func (s *Service) Protocols(ctx context.Context) ([]obsqra.Protocol, error) {
	return s.db.Protocols(ctx)
}

// Protocol returns the protocol with the given slug.
// Errors: ENOTFOUND.
func (s *Service) Protocol(ctx context.Context, slug string) (*obsqra.Protocol, error) {
	return s.db.ProtocolBySlug(ctx, slug)
}

// ProtocolByID returns the protocol with the given id.
// Errors: ENOTFOUND.
func (s *Service) ProtocolByID(ctx context.Context, id int64) (*obsqra.Protocol, error) {
	return s.db.ProtocolByID(ctx, id)
}

// ProtocolsByID returns every protocol by id from a snapshot at most
// Config.ProtocolTTL old, read once for all callers: what a subscription
// resolves for each event it sends (its protocol's slug, name, enabled),
// so that a stream of events costs one statement per TTL and instance, not
// one per event. The map and protocols are shared: callers must not
// modify them.
//
// Why a snapshot is correct here: protocols change only through this
// service (UpsertProtocol, SetProtocolEnabled, Import's creations), and
// each of those drops the snapshot once it has committed, so this
// instance's changes show at once. Another instance's change (or an
// operator's SQL) shows within ProtocolTTL; no event says that a protocol
// changed, and none needs to: an event's protocol field is the protocol
// as it is when the event is sent, not as of the event, so a subscriber
// has no order to keep between a rename and the events around it, and a
// second's delay is within the delay of delivery itself. Reads that decide
// something (ingestion, mutations, queries) read the table.
// Errors: only internal ones.
func (s *Service) ProtocolsByID(ctx context.Context) (map[int64]*obsqra.Protocol, error) {
	c := &s.protocols
	for {
		c.mu.Lock()
		if c.byID != nil && s.cfg.Now().Sub(c.at) < s.cfg.ProtocolTTL {
			m := c.byID
			c.mu.Unlock()
			return m, nil
		}
		if wait := c.loading; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		loading := make(chan struct{})
		c.loading = loading
		gen, at := c.gen, s.cfg.Now()
		c.mu.Unlock()

		ps, err := s.db.Protocols(ctx)
		var m map[int64]*obsqra.Protocol
		if err == nil {
			m = make(map[int64]*obsqra.Protocol, len(ps))
			for i := range ps {
				m[ps[i].ID] = &ps[i]
			}
		}
		c.mu.Lock()
		if err == nil && c.gen == gen {
			c.byID, c.at = m, at
		}
		c.loading = nil
		close(loading)
		c.mu.Unlock()
		return m, err
	}
}

// dropProtocols drops ProtocolsByID's snapshot after a change of protocols
// committed (or failed: dropping costs one read).
func (s *Service) dropProtocols() {
	c := &s.protocols
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.byID = nil
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidSlug reports whether s has the form of a protocol slug: 1-63
// lowercase letters, digits and dashes, starting with a letter or digit.
// No other slug can name a protocol, so callers may refuse it unasked.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// validateProtocol checks an admin's protocol input.
func validateProtocol(in *obsqra.ProtocolInput) error {
	in.Slug = strings.TrimSpace(in.Slug)
	in.Name = strings.TrimSpace(in.Name)
	in.Chain = strings.ToLower(strings.TrimSpace(in.Chain))
	switch {
	case !ValidSlug(in.Slug):
		return obsqra.Errorf(obsqra.EINVALID, "slug must be 1-63 lowercase letters, digits and dashes, starting with a letter or digit")
	case !plainText(in.Name, 100):
		return obsqra.Errorf(obsqra.EINVALID, "name must be 1-100 characters of UTF-8 text without control characters")
	case !plainText(in.Chain, 50):
		return obsqra.Errorf(obsqra.EINVALID, "chain must be 1-50 characters of UTF-8 text without control characters")
	case !in.Category.IsValid():
		return obsqra.Errorf(obsqra.EINVALID, "category %q is not a valid ProtocolCategory", in.Category)
	case in.AuditScore < 0 || in.AuditScore > 100:
		return obsqra.Errorf(obsqra.EINVALID, "auditScore must be between 0 and 100, got %d", in.AuditScore)
	case in.LaunchedOn < obsqra.DateOf(time.Date(2009, 1, 3, 0, 0, 0, 0, time.UTC)):
		return obsqra.Errorf(obsqra.EINVALID, "launchedOn %s is before any blockchain existed", in.LaunchedOn)
	case len(in.SourceIDs) > 16:
		return obsqra.Errorf(obsqra.EINVALID, "sourceIds may hold at most 16 entries")
	}
	for k, v := range in.SourceIDs {
		if !plainText(k, 64) || (v != "" && !plainText(v, 256)) {
			return obsqra.Errorf(obsqra.EINVALID, "sourceIds: keys must be 1-64 and values at most 256 characters of UTF-8 text without control characters")
		}
	}
	if t := in.PositionToken; t != nil {
		switch {
		case t.Address.IsZero() || t.Underlying.IsZero():
			return obsqra.Errorf(obsqra.EINVALID, "positionToken: address and underlying must be contract addresses, not 0")
		case t.Decimals < 0 || t.Decimals > obsqra.MaxDecimalFraction:
			return obsqra.Errorf(obsqra.EINVALID, "positionToken.decimals must be between 0 and %d, got %d", obsqra.MaxDecimalFraction, t.Decimals)
		case t.EntryPoint != "balanceOf" && t.EntryPoint != "balance_of":
			return obsqra.Errorf(obsqra.EINVALID, "positionToken.entryPoint must be balanceOf or balance_of, got %s", obsqra.QuoteInput(t.EntryPoint))
		}
	}
	return nil
}

// plainText reports whether s is 1 to max characters of valid UTF-8 with
// no control character (NUL included, which PostgreSQL's text refuses).
func plainText(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// UpsertProtocol creates or replaces the protocol of in.Slug.
// Errors: EUNAUTHENTICATED, EFORBIDDEN (not an admin), EINVALID naming the
// field.
func (s *Service) UpsertProtocol(ctx context.Context, in obsqra.ProtocolInput) (*obsqra.Protocol, error) {
	if _, err := obsqra.RequireAdmin(ctx, "change protocols"); err != nil {
		return nil, err
	}
	if err := validateProtocol(&in); err != nil {
		return nil, err
	}
	if in.LaunchedOn > obsqra.DateOf(s.cfg.Now()) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "launchedOn %s is in the future", in.LaunchedOn)
	}
	var p *obsqra.Protocol
	err := s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		p, _, err = tx.UpsertProtocol(ctx, in)
		return err
	})
	s.dropProtocols()
	return p, err
}

// SetProtocolEnabled turns a protocol on or off.
// Errors: EUNAUTHENTICATED, EFORBIDDEN, ENOTFOUND.
func (s *Service) SetProtocolEnabled(ctx context.Context, slug string, enabled bool) (*obsqra.Protocol, error) {
	if _, err := obsqra.RequireAdmin(ctx, "enable or disable protocols"); err != nil {
		return nil, err
	}
	var p *obsqra.Protocol
	err := s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		p, err = tx.SetProtocolEnabled(ctx, slug, enabled)
		return err
	})
	s.dropProtocols()
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no protocol has slug %q", slug)
	}
	return p, err
}
