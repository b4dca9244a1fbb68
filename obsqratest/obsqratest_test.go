package obsqratest_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra/obsqratest"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func TestClockTimers(t *testing.T) {
	t.Parallel()
	c := obsqratest.NewClock(t0)
	changes := 0
	c.OnChange(func() { changes++ })
	at := c.NewTimer(0)
	later := c.NewTimer(time.Minute)
	stopped := c.NewTimer(time.Minute)
	select {
	case got := <-at.C():
		if !got.Equal(t0) {
			t.Errorf("NewTimer(0) fired at %v, want %v", got, t0)
		}
	default:
		t.Errorf("NewTimer(0) did not fire at once")
	}
	if n := c.TimersAt(t0.Add(time.Minute)); n != 2 {
		t.Errorf("TimersAt(+1m) = %d, want 2", n)
	}
	if !stopped.Stop() || stopped.Stop() {
		t.Errorf("Stop() twice did not report true, then false")
	}
	c.Advance(59 * time.Second)
	select {
	case <-later.C():
		t.Fatalf("timer fired 1 s early")
	default:
	}
	c.Advance(time.Second)
	if got := <-later.C(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("timer fired at %v, want %v", got, t0.Add(time.Minute))
	}
	if later.Stop() {
		t.Errorf("Stop() of a fired timer = true, want false")
	}
	c.AddDays(1)
	if got, want := c.Now(), t0.Add(24*time.Hour+time.Minute); !got.Equal(want) {
		t.Errorf("Now() after AddDays(1) = %v, want %v", got, want)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Errorf("Now() after Set = %v, want %v", got, t0)
	}
	if changes != 7 { // three timers and four moves
		t.Errorf("OnChange called %d times, want 7", changes)
	}
}

func TestClockConcurrentAdvance(t *testing.T) {
	t.Parallel()
	var c obsqratest.Clock
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { c.Advance(time.Second) })
	}
	wg.Wait()
	if got, want := c.Now(), (time.Time{}).Add(50*time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
}

func TestBufferEntries(t *testing.T) {
	t.Parallel()
	var b obsqratest.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { log.Info(fmt.Sprintf("m%d", i%2), "i", i) })
	}
	wg.Wait()
	if got := len(b.Entries(t, "msg", "m0")); got != 10 {
		t.Errorf("Entries(m0) = %d entries, want 10", got)
	}
}

// outcome is a testing.TB that records how SharedData ends the test.
type outcome struct {
	testing.TB
	fatal, skip string
}

func (o *outcome) Helper() {}

func (o *outcome) Fatalf(format string, args ...any) {
	o.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (o *outcome) Skipf(format string, args ...any) {
	o.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// sharedData runs SharedData(name) on an outcome.
func sharedData(name string) *outcome {
	o := &outcome{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		obsqratest.SharedData(o, name)
	}()
	<-done
	return o
}

func TestSharedData(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(obsqratest.SharedDataDirEnv, dir)
	t.Setenv(obsqratest.RequireSharedDataEnv, "")
	if o := sharedData("absent.csv"); o.fatal != "" || !strings.Contains(o.skip, "REQUIRE_SHARED_DATA=1") {
		t.Errorf("missing file, variable unset: fatal %q, skip %q; want a skip naming REQUIRE_SHARED_DATA=1", o.fatal, o.skip)
	}
	t.Setenv(obsqratest.RequireSharedDataEnv, "1")
	if o := sharedData("absent.csv"); o.skip != "" || !strings.Contains(o.fatal, "absent.csv") {
		t.Errorf("missing file, REQUIRE_SHARED_DATA=1: fatal %q, skip %q; want a failure naming the file", o.fatal, o.skip)
	}
	if err := os.WriteFile(filepath.Join(dir, "present.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if o := sharedData("present.csv"); o.fatal != "" || o.skip != "" {
		t.Errorf("present file: fatal %q, skip %q; want neither", o.fatal, o.skip)
	}
}

// TestSharedDataDirFound: without the variable, the folder is the nearest
// shared/data above the working directory.
func TestSharedDataDirFound(t *testing.T) {
	root := t.TempDir()
	want := filepath.Join(root, "shared", "data")
	work := filepath.Join(root, "clone", "pkg")
	for _, d := range []string{want, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(obsqratest.SharedDataDirEnv, "")
	t.Chdir(work)
	got, _ := filepath.EvalSymlinks(obsqratest.SharedDataDir())
	if wantReal, _ := filepath.EvalSymlinks(want); got != wantReal {
		t.Errorf("SharedDataDir() = %q, want %q", got, wantReal)
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	// testdata/example.golden is this test's own golden file.
	obsqratest.Golden(t, "example", []byte("{\"data\": {\"ok\": true}}\n"))
}

func TestStep(t *testing.T) {
	t.Parallel()
	var ran []string
	obsqratest.Step(t, "first", func(t *testing.T) { ran = append(ran, t.Name()) })
	obsqratest.Step(t, "second step", func(t *testing.T) { ran = append(ran, t.Name()) })
	if want := []string{"TestStep/first", "TestStep/second_step"}; !slices.Equal(ran, want) {
		t.Errorf("steps ran %q, want %q", ran, want)
	}
}
