package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// TestImportMetrics runs `obsqra import metrics` on a bad file (refused
// with the line and column, nothing stored), a good one, the same again
// (nothing new), and the Aave V3 excerpt (its reserves become protocols).
func TestImportMetrics(t *testing.T) {
	dir := env(t)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	importFile := func(path string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), []string{"import", "metrics", path}, strings.NewReader(""), &out, &out)
		return out.String(), err
	}
	samples := func() int {
		t.Helper()
		db, err := store.Open(context.Background(), os.Getenv("DATABASE_URL"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ps, err := db.Protocols(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		h, err := db.MetricsHistory(context.Background(), ids, obsqra.HistoryPage{First: 100})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rows := range h {
			n += len(rows)
		}
		return n
	}

	const header = "protocol,observed_at,apy_bps,tvl_usd,utilization_bps\n"
	bad := write("bad.csv", header+"nostra,2026-01-01,410,1000,5000\nzklend,2026-01-01,380,-5,5000\n")
	if _, err := importFile(bad); err == nil || !strings.Contains(userMessage(err), `line 3: tvl_usd: "-5" is negative`) {
		t.Fatalf("import bad file: %v, want the line and column of the negative TVL", err)
	}
	unknown := write("unknown.csv", header+"nostra,2026-01-01,410,1000,5000\nnobody,2026-01-02,380,5,5000\n")
	if _, err := importFile(unknown); err == nil || !strings.Contains(userMessage(err), `unknown protocol "nobody"`) {
		t.Fatalf("import unknown protocol: %v", err)
	}
	if n := samples(); n != 0 {
		t.Fatalf("after refused imports, %d samples stored, want 0", n)
	}

	good := write("good.csv", header+"nostra,2026-01-01,410,1000,5000\nzklend,2026-01-01T12:00:00Z,380,,4000\nnostra,2026-01-02,415,1200,5100\n")
	out, err := importFile(good)
	if err != nil || !strings.Contains(out, "3 samples, 3 new, 0 already stored; 0 protocols created") {
		t.Fatalf("import good file = %q, %v", out, err)
	}
	out, err = importFile(good)
	if err != nil || !strings.Contains(out, "3 samples, 0 new, 3 already stored") {
		t.Fatalf("import good file again = %q, %v", out, err)
	}
	out, err = importFile("../../aave/testdata/excerpt.csv")
	if err != nil || !strings.Contains(out, "(aave-v3 format): 10 samples, 10 new, 0 already stored; 2 protocols created") {
		t.Fatalf("import Aave excerpt = %q, %v", out, err)
	}
	if n := samples(); n != 13 {
		t.Errorf("%d samples stored, want 13", n)
	}
	if _, err := importFile(filepath.Join(dir, "missing.csv")); err == nil {
		t.Error("import of a missing file succeeded")
	}
	if err := run(context.Background(), []string{"import", "nonsense"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "usage: obsqra import metrics FILE") {
		t.Errorf("import nonsense = %v, want the usage", err)
	}
}

// TestImportIsAllOrNothing: a file whose last sample conflicts with a
// stored one, beyond the first unit of ingestion (500 samples), stores
// nothing at all.
func TestImportIsAllOrNothing(t *testing.T) {
	dir := env(t)
	var b strings.Builder
	b.WriteString("protocol,observed_at,apy_bps\n")
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 600 {
		fmt.Fprintf(&b, "nostra,%s,%d\n", start.Add(time.Duration(i)*time.Hour).Format(time.RFC3339), 400+i%7)
	}
	first := filepath.Join(dir, "first.csv")
	os.WriteFile(first, []byte("protocol,observed_at,apy_bps\nnostra,"+start.Add(599*time.Hour).Format(time.RFC3339)+",1\n"), 0o600)
	whole := filepath.Join(dir, "whole.csv")
	os.WriteFile(whole, []byte(b.String()), 0o600)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"import", "metrics", first}, strings.NewReader(""), &out, &out); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"import", "metrics", whole}, strings.NewReader(""), &out, &out)
	if err == nil || !strings.Contains(userMessage(err), "is stored already") {
		t.Fatalf("import of a conflicting file = %v, want a conflict", err)
	}
	db, err := store.Open(context.Background(), os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, _ := db.Protocols(context.Background())
	var ids []int64
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	h, err := db.MetricsHistory(context.Background(), ids, obsqra.HistoryPage{First: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rows := range h {
		n += len(rows)
	}
	if n != 1 {
		t.Errorf("%d samples stored after a failed import, want only the first file's 1", n)
	}
}
