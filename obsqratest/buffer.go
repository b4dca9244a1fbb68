package obsqratest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// Buffer is a log destination that goroutines may write concurrently while
// the test reads it. Its zero value is empty and ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Entries returns the entries of a JSON log (one object a line, as
// slog.NewJSONHandler writes) whose key is value, e.g. Entries(t, "msg",
// "request failed") or Entries(t, "level", "ERROR"), and fails the test on
// a line that is not JSON.
func (b *Buffer) Entries(t testing.TB, key, value string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if e[key] == value {
			out = append(out, e)
		}
	}
	return out
}
