package storetest_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/obsqra/obsqra/store/storetest"
)

// TestCluster walks a throwaway cluster through its states: it answers,
// its processes stop on Freeze and go on after Thaw, it refuses
// connections after Stop and answers again after Start.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t)
	ping := func(t *testing.T) error {
		t.Helper()
		db, err := sql.Open("postgres", c.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return db.PingContext(ctx)
	}
	t.Run("answers", func(t *testing.T) {
		if err := ping(t); err != nil {
			t.Fatalf("ping = %v", err)
		}
	})
	t.Run("freeze", func(t *testing.T) {
		c.Freeze()
		pids := c.FrozenPIDs()
		if len(pids) < 2 {
			t.Fatalf("Freeze stopped %v, want the postmaster and its children", pids)
		}
		for _, pid := range pids {
			if s := state(t, pid); s != "T" && s != "Z" {
				t.Errorf("process %d is in state %s after Freeze, want T (stopped)", pid, s)
			}
		}
		c.Thaw()
		for _, pid := range pids {
			if s := state(t, pid); s == "T" {
				t.Errorf("process %d is still stopped after Thaw", pid)
			}
		}
		if err := ping(t); err != nil {
			t.Fatalf("ping after Thaw = %v", err)
		}
	})
	t.Run("stop and start", func(t *testing.T) {
		c.Stop()
		if err := ping(t); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("ping after Stop = %v, want connection refused", err)
		}
		c.Start()
		if err := ping(t); err != nil {
			t.Fatalf("ping after Start = %v", err)
		}
	})
}

// state returns the state letter of process pid (R, S, T …), or "" when it
// has exited (a zombie at Freeze is reaped after Thaw).
func state(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if os.IsNotExist(err) {
		return ""
	} else if err != nil {
		t.Fatalf("read state of %d: %v", pid, err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return fields[0]
}
