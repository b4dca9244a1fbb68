package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/obsqra/obsqra"
)

var protocolSelect = "SELECT " + columns("",
	"id", "slug", "name", "chain", "category", "audit_score", "launched_on",
	"contract_address", "enabled", "source_ids", "position_token", "created_at", "updated_at") + " FROM protocols"

func protocolScanArgs(p *obsqra.Protocol, sourceIDs *[]byte) []any {
	return []any{
		&p.ID, &p.Slug, &p.Name, &p.Chain, &p.Category, &p.AuditScore, dateScanner{&p.LaunchedOn},
		walletScanner{dst: &p.ContractAddress}, &p.Enabled, sourceIDs, positionTokenScanner{&p.PositionToken},
		scanTime(&p.CreatedAt), scanTime(&p.UpdatedAt),
	}
}

// positionTokenScanner reads a nullable position token stored as JSON.
type positionTokenScanner struct{ dst **obsqra.PositionToken }

func (s positionTokenScanner) Scan(v any) error {
	var b []byte
	switch v := v.(type) {
	case nil:
		*s.dst = nil
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("position token: unexpected %T", v)
	}
	t := new(obsqra.PositionToken)
	if err := json.Unmarshal(b, t); err != nil {
		return fmt.Errorf("position token: %w", err)
	}
	*s.dst = t
	return nil
}

// positionTokenArg returns a position token as a query argument: JSON
// text, NULL for none.
func positionTokenArg(t *obsqra.PositionToken) (any, error) {
	if t == nil {
		return nil, nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode position token: %w", err)
	}
	return string(b), nil
}

func scanProtocols(rows *sql.Rows, op string) ([]obsqra.Protocol, error) {
	defer rows.Close()
	var out []obsqra.Protocol
	for rows.Next() {
		var p obsqra.Protocol
		var ids []byte
		if err := rows.Scan(protocolScanArgs(&p, &ids)...); err != nil {
			return nil, translate(err, op, "protocol")
		}
		if err := decodeSourceIDs(ids, &p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, op, "row")
	}
	return out, nil
}

func decodeSourceIDs(b []byte, p *obsqra.Protocol) error {
	p.SourceIDs = nil
	if err := json.Unmarshal(b, &p.SourceIDs); err != nil {
		return fmt.Errorf("decode source ids of protocol %s: %w", p.Slug, err)
	}
	return nil
}

// Protocols returns every protocol, ordered by slug.
// Errors: only internal ones.
func (db *DB) Protocols(ctx context.Context) ([]obsqra.Protocol, error) {
	return protocols(ctx, db.conn())
}

// Protocols returns every protocol, ordered by slug, as this unit of work
// sees them. Errors: only internal ones.
func (tx *Tx) Protocols(ctx context.Context) ([]obsqra.Protocol, error) {
	return protocols(ctx, tx.conn())
}

func protocols(ctx context.Context, c conn) ([]obsqra.Protocol, error) {
	rows, err := c.query(ctx, protocolSelect+" ORDER BY slug")
	if err != nil {
		return nil, translate(err, "list protocols", "protocol")
	}
	return scanProtocols(rows, "list protocols")
}

// ProtocolBySlug returns the protocol with the given slug.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) ProtocolBySlug(ctx context.Context, slug string) (*obsqra.Protocol, error) {
	return protocolWhere(ctx, db.conn(), "slug = ?", slug)
}

// ProtocolByID returns the protocol with the given id.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) ProtocolByID(ctx context.Context, id int64) (*obsqra.Protocol, error) {
	return protocolWhere(ctx, db.conn(), "id = ?", id)
}

// ProtocolBySlug returns the protocol with the given slug, as this unit of
// work sees it. Errors: ENOTFOUND when there is none; otherwise internal ones.
func (tx *Tx) ProtocolBySlug(ctx context.Context, slug string) (*obsqra.Protocol, error) {
	return protocolWhere(ctx, tx.conn(), "slug = ?", slug)
}

func protocolWhere(ctx context.Context, c conn, cond string, arg any) (*obsqra.Protocol, error) {
	p := new(obsqra.Protocol)
	var ids []byte
	if err := c.queryRow(ctx, protocolSelect+" WHERE "+cond, arg).Scan(protocolScanArgs(p, &ids)...); err != nil {
		return nil, translate(err, "load protocol", "protocol")
	}
	if err := decodeSourceIDs(ids, p); err != nil {
		return nil, err
	}
	return p, nil
}

// UpsertProtocol creates the protocol of in.Slug or replaces every field of
// the existing one, and returns it with created reporting which. The
// change's TopicMarketChanged event is appended with it, so no read cache
// outlives it.
// Errors: ECONFLICT when another unit of work creates the same slug at the
// same time (PostgreSQL); otherwise internal ones (the caller validates).
func (tx *Tx) UpsertProtocol(ctx context.Context, in obsqra.ProtocolInput) (p *obsqra.Protocol, created bool, err error) {
	c := tx.conn()
	now := c.d.timeArg(tx.now())
	ids := in.SourceIDs
	if ids == nil {
		ids = map[string]string{}
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, false, fmt.Errorf("encode source ids: %w", err)
	}
	token, err := positionTokenArg(in.PositionToken)
	if err != nil {
		return nil, false, err
	}
	n, err := c.execCount(ctx, `
		UPDATE protocols SET name = ?, chain = ?, category = ?, audit_score = ?, launched_on = ?,
			contract_address = ?, enabled = ?, source_ids = ?, position_token = ?, updated_at = ?
		WHERE slug = ?`,
		in.Name, in.Chain, string(in.Category), in.AuditScore, in.LaunchedOn.String(),
		stringArg(in.ContractAddress), in.Enabled, string(idsJSON), token, now, in.Slug)
	if err != nil {
		return nil, false, translate(err, "update protocol", "protocol")
	}
	if n == 0 {
		created = true
		if _, err := c.exec(ctx, `
			INSERT INTO protocols (slug, name, chain, category, audit_score, launched_on,
				contract_address, enabled, source_ids, position_token, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			in.Slug, in.Name, in.Chain, string(in.Category), in.AuditScore, in.LaunchedOn.String(),
			stringArg(in.ContractAddress), in.Enabled, string(idsJSON), token, now, now); err != nil {
			return nil, false, translate(err, "create protocol", "protocol")
		}
	}
	if p, err = protocolWhere(ctx, c, "slug = ?", in.Slug); err != nil {
		return nil, false, err
	}
	return p, created, tx.AppendEvent(ctx, obsqra.MarketChangedEvent(obsqra.MarketProtocolChanged, p.ID))
}

// SetProtocolEnabled turns a protocol on or off and returns it, with the
// change's TopicMarketChanged event.
// Errors: ENOTFOUND when there is no such protocol; otherwise internal ones.
func (tx *Tx) SetProtocolEnabled(ctx context.Context, slug string, enabled bool) (*obsqra.Protocol, error) {
	c := tx.conn()
	n, err := c.execCount(ctx, "UPDATE protocols SET enabled = ?, updated_at = ? WHERE slug = ?",
		enabled, c.d.timeArg(tx.now()), slug)
	if err == nil && n == 0 {
		err = sql.ErrNoRows
	}
	if err != nil {
		return nil, translate(err, "set protocol enabled", "protocol")
	}
	p, err := protocolWhere(ctx, c, "slug = ?", slug)
	if err != nil {
		return nil, err
	}
	return p, tx.AppendEvent(ctx, obsqra.MarketChangedEvent(obsqra.MarketProtocolChanged, p.ID))
}

// dateScanner reads a date column: a DATE on PostgreSQL, YYYY-MM-DD text on
// SQLite.
type dateScanner struct{ dst *obsqra.Date }

func (s dateScanner) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*s.dst = obsqra.DateOf(time.Date(v.Year(), v.Month(), v.Day(), 0, 0, 0, 0, time.UTC))
		return nil
	case string:
		return s.parse(v)
	case []byte:
		return s.parse(string(v))
	}
	return fmt.Errorf("scan date from %T", src)
}

func (s dateScanner) parse(v string) error {
	if len(v) > 10 {
		v = v[:10]
	}
	d, err := obsqra.ParseDate(v)
	if err != nil {
		return fmt.Errorf("scan date: %w", err)
	}
	*s.dst = d
	return nil
}
