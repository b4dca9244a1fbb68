package obsqratest

import (
	"bytes"
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
