package obsqratest

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update makes Golden rewrite the golden files instead of comparing:
// go test ./resolvers -run TestX -update.
var update = flag.Bool("update", false, "rewrite golden files")

// Golden compares got with testdata/name.golden of the test's package and
// fails the test, showing both, when they differ. With -update it writes
// got to the file instead. got is compared as it is: normalise volatile
// fields (ids, times, tokens) before.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatalf("golden: %v", err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("golden: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden: %v (run the test with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("response differs from %s (run with -update to accept it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// GoldenJSON is Golden for a JSON document (a GraphQL response or part of
// one), stored indented by two spaces so that the golden file reads and
// diffs line by line. Key order and values are compared as they are;
// whitespace is not.
func GoldenJSON(t testing.TB, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, got, "", "  "); err != nil {
		t.Fatalf("golden %s: not JSON: %v\n%s", name, err, got)
	}
	buf.WriteByte('\n')
	Golden(t, name, buf.Bytes())
}
