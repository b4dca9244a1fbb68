//go:build linux

package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the bench reads the server's database after the run
)

// serverProc is the obsqra process under test. Every start runs the same
// binary with the same environment on the same database and port, so a
// restart is what a deploy does.
type serverProc struct {
	bin  string
	env  []string
	db   string // the SQLite file
	port int
	// stderr receives the server's log; os.Stderr when nil.
	stderr io.Writer

	mu  sync.Mutex
	cmd *exec.Cmd
}

// newServerProc prepares a server in dir on a free port, its simulated
// market ticking every tick after a backfill of historyDays, with extra
// (KEY=VALUE) last in its environment, so that they win over the rest.
func newServerProc(bin, dir string, tick time.Duration, historyDays int, extra []string) (*serverProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	db := filepath.Join(dir, "bench.db")
	env := append(os.Environ(),
		"API_HOST=127.0.0.1", "API_PORT="+strconv.Itoa(port),
		"DATABASE_URL=sqlite:"+db, "DATA_DIR="+dir,
		"MARKET_POLL_INTERVAL="+tick.String(), "MARKET_HISTORY_DAYS="+strconv.Itoa(historyDays),
		"LOG_LEVEL="+logLevel(), "METRICS_ADDR=off")
	env = append(env, extra...)
	return &serverProc{bin: bin, env: env, db: db, port: port}, nil
}

// base is the server's HTTP URL; wsURL its GraphQL WebSocket URL, and
// httpURL its GraphQL URL over HTTP.
func (s *serverProc) base() string    { return "http://127.0.0.1:" + strconv.Itoa(s.port) }
func (s *serverProc) wsURL() string   { return "ws://127.0.0.1:" + strconv.Itoa(s.port) + "/graphql" }
func (s *serverProc) httpURL() string { return s.base() + "/graphql" }

// start starts the server and waits until it is ready. ctx ending
// terminates it (SIGTERM, SIGKILL 20 s later).
func (s *serverProc) start(ctx context.Context) error { return s.startThen(ctx, func() {}) }

// startThen is start, calling started once the process runs (before it is
// ready).
func (s *serverProc) startThen(ctx context.Context, started func()) error {
	cmd := exec.CommandContext(ctx, s.bin, "serve")
	cmd.Env = s.env
	cmd.Stderr = s.stderr
	if s.stderr == nil {
		cmd.Stderr = os.Stderr
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	started()
	return awaitReady(ctx, s.base())
}

// stop sends SIGTERM and waits for the process to exit.
func (s *serverProc) stop() error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop server: %w", err)
	}
	err := cmd.Wait()
	if _, ok := err.(*exec.ExitError); ok {
		return nil // an exit status is no failure to stop
	}
	return err
}

// pid is the running process's id.
func (s *serverProc) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// openDB opens the server's SQLite database for reading beside it.
func (s *serverProc) openDB() (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+s.db+"?mode=ro&_pragma=busy_timeout(5000)")
}

// logTail passes the first lines of a log on to w and counts the rest: a
// server under a storm may log an error per subscription it cancels.
type logTail struct {
	w     io.Writer
	max   int
	mu    sync.Mutex
	lines int
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for rest := p; len(rest) > 0; {
		line, after, whole := bytes.Cut(rest, []byte("\n"))
		if l.lines < l.max {
			l.w.Write(line)
			if whole {
				l.w.Write([]byte("\n"))
			}
		}
		if whole {
			l.lines++
		}
		rest = after
	}
	return len(p), nil
}

// count returns how many lines were logged since the last reset.
func (l *logTail) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines
}

// reset returns how many lines were logged since the last reset.
func (l *logTail) reset() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.lines
	l.lines = 0
	return n
}

// envFlag collects repeated KEY=VALUE flags.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, " ") }

func (e *envFlag) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

// memory is a process's resident set (VmRSS) and its high-water mark
// (VmHWM) in KiB, from /proc.
type memory struct{ rss, hwm int64 }

func memoryOf(pid int) (memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			m.rss, _ = strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			m.hwm, _ = strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	return m, nil
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int64, error) {
	m, err := memoryOf(pid)
	return m.rss, err
}

// peakSampler samples a process's resident set every interval and keeps
// the highest, until stop.
type peakSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak int64 // written by the sampling goroutine, read after wg.Wait
}

// samplePeak starts sampling the process pid returns (which may change,
// across a restart) every interval.
func samplePeak(pid func() int, interval time.Duration) *peakSampler {
	p := &peakSampler{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if m, err := memoryOf(pid()); err == nil {
				p.peak = max(p.peak, m.rss)
			}
			select {
			case <-p.done:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// stop stops sampling and returns the peak in KiB.
func (p *peakSampler) stop() int64 {
	close(p.done)
	p.wg.Wait()
	return p.peak
}

func awaitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("server at %s not ready after a minute", base)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func openFiles(pid int) int {
	entries, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(entries)
}

// logLevel is the server's: BENCH_LOG_LEVEL, warn by default.
func logLevel() string {
	if l := os.Getenv("BENCH_LOG_LEVEL"); l != "" {
		return l
	}
	return "warn"
}

// mib is KiB in MiB.
func mib(kib int64) float64 { return float64(kib) / 1024 }
