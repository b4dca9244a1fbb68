package store

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/obsqra/obsqra"
)

// The scanners of nullable columns, one per kind of value: a NULL reads as
// the value's zero (an id 0, text "") or as a nil pointer. sql.NullInt64 and
// sql.NullString are not used beside them, so a column of one kind reads
// the same way everywhere. The NOT NULL time scanner is the dialect's
// (timeScanner).

// idScanner reads a nullable id (or other integer) column: 0 for NULL.
type idScanner struct{ dst *int64 }

func (s idScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.dst = 0
		return nil
	case int64:
		*s.dst = v
		return nil
	}
	return fmt.Errorf("scan id from %T", src)
}

// textScanner reads a nullable text column: "" for NULL.
type textScanner struct{ dst *string }

func (s textScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.dst = ""
		return nil
	case string:
		*s.dst = v
		return nil
	case []byte:
		*s.dst = string(v)
		return nil
	}
	return fmt.Errorf("scan text from %T", src)
}

// boolScanner reads a nullable boolean column (boolean on PostgreSQL,
// INTEGER 0 or 1 on SQLite): nil for NULL.
type boolScanner struct{ dst **bool }

func (s boolScanner) Scan(src any) error {
	var b bool
	switch v := src.(type) {
	case nil:
		*s.dst = nil
		return nil
	case bool:
		b = v
	case int64:
		if v != 0 && v != 1 {
			return fmt.Errorf("scan boolean from %d", v)
		}
		b = v == 1
	default:
		return fmt.Errorf("scan boolean from %T", src)
	}
	*s.dst = &b
	return nil
}

// jsonObjectScanner reads a nullable JSON text column: nil for NULL.
type jsonObjectScanner struct{ dst *obsqra.JSONObject }

func (s jsonObjectScanner) Scan(src any) error {
	var text string
	if err := (textScanner{&text}).Scan(src); err != nil {
		return fmt.Errorf("scan JSON object: %w", err)
	}
	*s.dst = nil
	if text != "" { // NULL: no object ("" is none either)
		*s.dst = obsqra.JSONObject(text)
	}
	return nil
}

// nullTimeScanner reads a nullable time column into *dst: nil for NULL.
type nullTimeScanner struct{ dst **time.Time }

func (s nullTimeScanner) Scan(src any) error {
	if src == nil {
		*s.dst = nil
		return nil
	}
	var t time.Time
	if err := scanTime(&t).Scan(src); err != nil {
		return err
	}
	*s.dst = &t
	return nil
}

// scanNullTime returns a scanner for a nullable time column.
func scanNullTime(dst **time.Time) nullTimeScanner { return nullTimeScanner{dst: dst} }

// nullScanner reads a nullable column of a type that scans itself (T's
// pointer is a sql.Scanner) into *dst: nil for NULL.
type nullScanner[T any, PT interface {
	*T
	sql.Scanner
}] struct{ dst **T }

func (s nullScanner[T, PT]) Scan(src any) error {
	if src == nil {
		*s.dst = nil
		return nil
	}
	v := new(T)
	if err := PT(v).Scan(src); err != nil {
		return err
	}
	*s.dst = v
	return nil
}

// decimalScanner reads a nullable decimal column: nil for NULL.
type decimalScanner = nullScanner[obsqra.Decimal, *obsqra.Decimal]

// walletScanner reads a nullable felt column (an address, a hash): nil for
// NULL.
type walletScanner = nullScanner[obsqra.Felt, *obsqra.Felt]
