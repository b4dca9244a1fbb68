package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Bounds of a server's start and stop.
const (
	// readyWithin bounds a start: the first one migrates an empty database
	// and backfills the simulated market's history before it answers.
	readyWithin = 2 * time.Minute
	// stopWithin is how long a server may take to exit after SIGTERM
	// (its SHUTDOWN_TIMEOUT is 15 s) before it is killed.
	stopWithin = 30 * time.Second
	// logTailLines are the lines of a server's log shown when it fails.
	logTailLines = 40
)

// server is one obsqra binary under test. It runs at most once at a time;
// every start gets a free port, the same environment and the same
// database, and appends to the same log file.
type server struct {
	name    string // "base" or "new", as the output names it
	bin     string
	env     []string // KEY=VALUE beside API_PORT
	logPath string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's, once exited is closed
	url    string        // http://127.0.0.1:port of the running process
}

// serverEnv is the environment every server runs with, after the
// benchmark's own: the bench database, a quiet log, no metrics listener,
// budgets no bench can spend, access tokens that outlive the run, and one
// secret key, so that the token issued by the first server is accepted by
// every later one.
func serverEnv(databaseURL, dataDir, secretKey string, marketPoll time.Duration) []string {
	return append(os.Environ(),
		"DATABASE_URL="+databaseURL,
		"API_HOST=127.0.0.1",
		"LOG_LEVEL=error",
		"METRICS_ADDR=off",
		"MARKET_POLL_INTERVAL="+marketPoll.String(),
		"RATE_LIMIT_USER=1000000000000/1s",
		"RATE_LIMIT_ANONYMOUS=1000000000000/1s",
		"ACCESS_TOKEN_EXPIRE_MINUTES=1440",
		"SECRET_KEY="+secretKey,
		"DATA_DIR="+dataDir,
	)
}

// start runs `bin serve` on a free port and waits until GET /ready
// answers 200. On failure the process is stopped and the error holds the
// tail of its log.
func (s *server) start(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s log: %w", s.name, err)
	}
	// The child holds its own descriptor of the file once started.
	defer logFile.Close()
	fmt.Fprintf(logFile, "--- benchread: %s serve on port %d at %s\n", s.bin, port, time.Now().Format(time.RFC3339))

	cmd := exec.Command(s.bin, "serve")
	// A copy: both servers share env's array.
	cmd.Env = append(s.env[:len(s.env):len(s.env)], "API_PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = serverProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s server %s: %w", s.name, s.bin, err)
	}
	s.cmd, s.exited, s.err = cmd, make(chan struct{}), nil
	s.url = "http://127.0.0.1:" + strconv.Itoa(port)
	go func(exited chan<- struct{}) {
		s.err = cmd.Wait()
		close(exited)
	}(s.exited)

	if err := s.awaitReady(ctx); err != nil {
		// The error says what went wrong; stopping only cleans up (and
		// kills a server that will not stop, which its log then shows).
		s.stop()
		return fmt.Errorf("%s server: %w\n%s", s.name, err, s.logTail())
	}
	return nil
}

// awaitReady polls GET /ready until it answers 200, the process exits,
// readyWithin passes or ctx ends.
func (s *server) awaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyWithin)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/ready", nil)
		if err != nil {
			return fmt.Errorf("ready check: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited before it was ready: %w", s.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s/ready: %w", s.url, ctx.Err())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// stopWithin. An exit status after SIGTERM is no failure to stop; a
// process that had to be killed is, and so is one that had exited by
// itself. It takes no context: it runs on the way out, after a cancelled
// one too, and is bounded by stopWithin.
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	cmd := s.cmd
	s.cmd = nil
	select {
	case <-s.exited:
		return fmt.Errorf("%s server exited before it was stopped: %v\n%s", s.name, s.err, s.logTail())
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s server: %w", s.name, err)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopWithin):
		cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("%s server still running %s after SIGTERM: killed\n%s", s.name, stopWithin, s.logTail())
	}
}

// logTail returns the last logTailLines lines of the server's log,
// indented, for an error message.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("  (no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	lines = lines[max(0, len(lines)-logTailLines):]
	var out bytes.Buffer
	fmt.Fprintf(&out, "  last lines of %s:\n", s.logPath)
	for _, l := range lines {
		out.WriteString("  | ")
		out.Write(l)
		out.WriteByte('\n')
	}
	return out.String()
}

// withServer runs fn while s runs, and stops s afterwards whatever fn
// returned.
func withServer(ctx context.Context, s *server, fn func() error) error {
	if err := s.start(ctx); err != nil {
		return err
	}
	err := fn()
	return errors.Join(err, s.stop())
}

// freePort returns a TCP port of 127.0.0.1 that nothing listened on a
// moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
