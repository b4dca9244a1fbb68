package obsqratest

import (
	"os"
	"testing"
)

// RequireSharedDataEnv is the environment variable that makes the shared
// data (../shared/data beside the repository) required: set to 1, as
// .ci/run does, a test whose file is missing fails instead of skipping.
const RequireSharedDataEnv = "REQUIRE_SHARED_DATA"

// SharedData returns path, a file of the shared data, when it exists. When
// it does not, it fails the test if RequireSharedDataEnv is 1, and skips it
// otherwise.
func SharedData(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv(RequireSharedDataEnv) == "1" {
			t.Fatalf("shared data %s: %v (%s=1 requires it)", path, err, RequireSharedDataEnv)
		}
		t.Skipf("shared data %s: %v (set %s=1 to fail instead of skipping)", path, err, RequireSharedDataEnv)
	}
	return path
}
