package obsqratest

import (
	"os"
	"path/filepath"
	"testing"
)

// RequireSharedDataEnv is the environment variable that makes the shared
// data required: set to 1, as .ci/run does, a test whose file is missing
// fails instead of skipping.
const RequireSharedDataEnv = "REQUIRE_SHARED_DATA"

// SharedDataDirEnv names the folder of the shared data (the real Aave V3
// rates). Unset, the folder is shared/data in the nearest folder above the
// test's working directory that has one: ../shared/data beside the
// checkout, wherever the checkout is.
const SharedDataDirEnv = "SHARED_DATA_DIR"

// SharedData returns the path of name, a file of the shared data, when it
// exists. When it does not, it fails the test if RequireSharedDataEnv is
// 1, and skips it otherwise.
func SharedData(t testing.TB, name string) string {
	t.Helper()
	path := filepath.Join(SharedDataDir(), name)
	if _, err := os.Stat(path); err != nil {
		if os.Getenv(RequireSharedDataEnv) == "1" {
			t.Fatalf("shared data %s: %v (%s=1 requires it; %s names its folder)", path, err, RequireSharedDataEnv, SharedDataDirEnv)
		}
		t.Skipf("shared data %s: %v (set %s=1 to fail instead of skipping, %s to name its folder)", path, err, RequireSharedDataEnv, SharedDataDirEnv)
	}
	return path
}

// SharedDataDir returns the folder of the shared data: SharedDataDirEnv's
// value, or the nearest shared/data above the working directory, or
// "shared/data" when there is none (no file is found there).
func SharedDataDir() string {
	if dir := os.Getenv(SharedDataDirEnv); dir != "" {
		return dir
	}
	dir, err := os.Getwd()
	if err != nil {
		return filepath.Join("shared", "data")
	}
	for {
		candidate := filepath.Join(dir, "shared", "data")
		if fi, err := os.Stat(candidate); err == nil && fi.IsDir() {
			return candidate
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return filepath.Join("shared", "data")
		}
		dir = parent
	}
}
