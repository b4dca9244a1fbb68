package obsqratest

import "testing"

// Step runs f as the subtest name of a journey, a test that walks through
// steps that build on each other, and ends the journey when the step
// fails: the failure names its step, and later steps do not run on what
// it left undone.
func Step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}
