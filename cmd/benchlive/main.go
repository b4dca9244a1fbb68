// Command benchlive measures live delivery at scale: it starts an Obsqra
// server (SQLite in a temporary directory, the simulated market ticking
// every -tick), then load generators in processes of their own (a process
// may hold at most 20,000 open files here), each holding its share of -conns
// WebSocket connections subscribed to riskScoreUpdated for all protocols.
// For -duration it records, per delivery, the time from the score's commit
// (its computedAt, stamped just before the commit) to its arrival, and at
// the end prints deliveries expected and made, dropped connections,
// latency percentiles, and the server's memory per connection.
//
// Usage (see `make bench-live`):
//
//	benchlive -server bin/obsqra -conns 15000 -generators 3 -duration 5m
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "generate" {
		if err := generate(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchlive generate:", err)
			os.Exit(1)
		}
		return
	}
	if err := orchestrate(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchlive:", err)
		os.Exit(1)
	}
}

// report is what a generator prints when it is done.
type report struct {
	Conns      int   `json:"conns"`
	Connected  int   `json:"connected"`
	Dropped    int   `json:"dropped"`
	Deliveries int64 `json:"deliveries"`
	Events     int   `json:"events"` // distinct scores seen
	// MinPerConn and MaxPerConn are the fewest and most scores one
	// connection received in the window.
	MinPerConn int64   `json:"minPerConn"`
	MaxPerConn int64   `json:"maxPerConn"`
	LatencyMs  []int32 `json:"latencyMs"`
	Errors     []string
}

func orchestrate(args []string) error {
	fs := flag.NewFlagSet("benchlive", flag.ContinueOnError)
	serverBin := fs.String("server", "bin/obsqra", "the obsqra binary")
	conns := fs.Int("conns", 15000, "WebSocket connections in all")
	generators := fs.Int("generators", 3, "load generator processes")
	duration := fs.Duration("duration", 5*time.Minute, "how long to hold the connections after they are all up")
	tick := fs.Duration("tick", 5*time.Second, "the market's poll interval: every protocol ticks together")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "benchlive")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, *serverBin, "serve")
	srv.Env = append(os.Environ(),
		"API_HOST=127.0.0.1", "API_PORT="+strconv.Itoa(port),
		"DATABASE_URL=sqlite:"+filepath.Join(dir, "bench.db"), "DATA_DIR="+dir,
		"MARKET_POLL_INTERVAL="+tick.String(), "MARKET_HISTORY_DAYS=30", "LOG_LEVEL="+logLevel())
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if err := awaitReady(ctx, base); err != nil {
		return err
	}
	baseRSS, _ := rssKiB(srv.Process.Pid)
	fmt.Printf("server pid %d ready on %s, RSS %d KiB before connections\n", srv.Process.Pid, base, baseRSS)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	per := (*conns + *generators - 1) / *generators
	var cmds []*exec.Cmd
	var windows []io.WriteCloser
	ready := make(chan string, *generators)
	reports := make(chan report, *generators)
	for i := range *generators {
		n := min(per, *conns-i*per)
		cmd := exec.CommandContext(ctx, self, "generate", "-url", "ws://127.0.0.1:"+strconv.Itoa(port)+"/graphql",
			"-conns", strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		window, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		windows = append(windows, window)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start generator: %w", err)
		}
		cmds = append(cmds, cmd)
		// A generator prints "ready …" once its connections are up, then
		// its report as JSON when it is done.
		go func() {
			r := bufio.NewReader(out)
			line, _ := r.ReadString('\n')
			ready <- strings.TrimSpace(line)
			var rep report
			if err := json.NewDecoder(r).Decode(&rep); err != nil {
				rep.Errors = append(rep.Errors, "generator report: "+err.Error())
			}
			reports <- rep
		}()
	}
	for range *generators {
		select {
		case line := <-ready:
			fmt.Println("generator:", line)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(2 * time.Second) // let the server settle before measuring memory
	rss, _ := rssKiB(srv.Process.Pid)
	fds := openFiles(srv.Process.Pid)
	fmt.Printf("all %d connections up: server RSS %d KiB (%+d KiB, %.1f KiB per connection), %d open files\n",
		*conns, rss, rss-baseRSS, float64(rss-baseRSS)/float64(*conns), fds)
	// Every generator counts the scores committed in the same window, so
	// that each connection is expected to receive the same ones.
	from := time.Now()
	until := from.Add(*duration)
	for _, w := range windows {
		fmt.Fprintf(w, "window %d %d\n", from.UnixNano(), until.UnixNano())
		w.Close()
	}

	var all report
	var peakRSS atomic.Int64
	peakRSS.Store(rss)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if r, err := rssKiB(srv.Process.Pid); err == nil && r > peakRSS.Load() {
					peakRSS.Store(r)
				}
			}
		}
	}()
	for range cmds {
		r := <-reports
		all.Conns += r.Conns
		all.Connected += r.Connected
		all.Dropped += r.Dropped
		all.Deliveries += r.Deliveries
		all.Events = max(all.Events, r.Events)
		if all.MinPerConn <= 0 && all.MaxPerConn == 0 || r.MinPerConn < all.MinPerConn {
			all.MinPerConn = r.MinPerConn
		}
		all.MaxPerConn = max(all.MaxPerConn, r.MaxPerConn)
		all.LatencyMs = append(all.LatencyMs, r.LatencyMs...)
		all.Errors = append(all.Errors, r.Errors...)
	}
	for _, cmd := range cmds {
		cmd.Wait()
	}
	close(done)
	slices.Sort(all.LatencyMs)
	pct := func(p float64) int32 {
		if len(all.LatencyMs) == 0 {
			return -1
		}
		return all.LatencyMs[min(len(all.LatencyMs)-1, int(p*float64(len(all.LatencyMs))))]
	}
	expected := int64(all.Events) * int64(all.Conns)
	fmt.Printf("connections %d, connected %d, dropped %d\n", all.Conns, all.Connected, all.Dropped)
	fmt.Printf("events %d, deliveries %d of %d expected (%.3f%%)\n", all.Events, all.Deliveries, expected,
		100*float64(all.Deliveries)/float64(max(expected, 1)))
	fmt.Printf("scores per connection: %d to %d\n", all.MinPerConn, all.MaxPerConn)
	fmt.Printf("latency from commit: min %d ms, p50 %d ms, p90 %d ms, p99 %d ms, max %d ms\n", pct(0), pct(0.5), pct(0.9), pct(0.99), pct(1))
	fmt.Printf("server peak RSS %d KiB: %.1f KiB per connection above the idle server\n",
		peakRSS.Load(), float64(peakRSS.Load()-baseRSS)/float64(all.Conns))
	for i, e := range all.Errors {
		if i == 10 {
			fmt.Printf("… %d more errors\n", len(all.Errors)-10)
			break
		}
		fmt.Println("error:", e)
	}
	return nil
}

// grace is how long a generator keeps reading after its window closes.
const grace = 3 * time.Second

const subscription = `{"id":"1","type":"subscribe","payload":{"query":"subscription { riskScoreUpdated { cursor riskScore { score computedAt protocol { slug } } } }"}}`

// generate holds conns connections to url, prints "ready …" once they are
// all up, reads from its standard input the window whose scores it counts
// ("window FROM UNTIL", in Unix nanoseconds), and after it prints its
// report as JSON.
func generate(args []string) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	url := fs.String("url", "", "the server's WebSocket URL")
	conns := fs.Int("conns", 5000, "connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		rep     = report{Conns: *conns, MinPerConn: -1}
		events  = map[string]bool{}
		holding atomic.Bool
		// Only scores committed in the measured window count: from when
		// every connection is up to the end of -duration (the generator
		// keeps reading for a grace period after it, so the last of them
		// arrive).
		from, until atomic.Int64
	)
	from.Store(1<<62 - 1)
	until.Store(1<<62 - 1)
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Subprotocols: []string{"graphql-transport-ws"},
		ReadBufferSize: 1024, WriteBufferSize: 512}
	var wg sync.WaitGroup
	var open []*websocket.Conn
	for i := range *conns {
		c, _, err := dialer.Dial(*url, nil)
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("dial %d: %v", i, err))
			continue
		}
		// The protocol wants the ack before the subscribe (else 4401).
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`)); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("init %d: %v", i, err))
			c.Close()
			continue
		}
		if _, m, err := c.ReadMessage(); err != nil || !strings.Contains(string(m), `"connection_ack"`) {
			rep.Errors = append(rep.Errors, fmt.Sprintf("init %d: %s %v", i, m, err))
			c.Close()
			continue
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte(subscription)); err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("subscribe %d: %v", i, err))
			c.Close()
			continue
		}
		open = append(open, c)
		rep.Connected++
		// One connection per generator records which scores arrived; the
		// others only count theirs, so no lock is taken per message.
		recorder := i == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []int32
			var n int64
			var kinds []string
			var buf bytes.Buffer // each message, read into the same memory
			defer func() {
				if n == 0 {
					mu.Lock()
					rep.Errors = append(rep.Errors, fmt.Sprintf("a connection received no score in the window; it received %v", kinds))
					mu.Unlock()
				}
				mu.Lock()
				rep.LatencyMs = append(rep.LatencyMs, lat...)
				rep.Deliveries += n
				if rep.MinPerConn < 0 || n < rep.MinPerConn {
					rep.MinPerConn = n
				}
				rep.MaxPerConn = max(rep.MaxPerConn, n)
				mu.Unlock()
			}()
			for {
				_, r, err := c.NextReader()
				if err == nil {
					buf.Reset()
					_, err = buf.ReadFrom(r)
				}
				if err != nil {
					if holding.Load() {
						mu.Lock()
						rep.Dropped++
						rep.Errors = append(rep.Errors, "read: "+err.Error())
						mu.Unlock()
					}
					return
				}
				now := time.Now()
				m := buf.Bytes()
				// The generator shares the server's two cores: it reads the
				// few fields it needs without decoding the whole message,
				// and allocates little.
				msgType := string(field(m, `"type":"`))
				if len(kinds) < 2 {
					kinds = append(kinds, fmt.Sprintf("%s %.300s", msgType, m))
				}
				switch msgType {
				case "ping":
					c.WriteMessage(websocket.TextMessage, []byte(`{"type":"pong"}`))
				case "next":
					computed, err := time.Parse(time.RFC3339Nano, string(field(m, `"computedAt":"`)))
					if err != nil {
						continue
					}
					at := computed.UnixNano()
					if at < from.Load() || at >= until.Load() {
						continue // outside the measured window
					}
					n++
					lat = append(lat, int32(now.Sub(computed).Milliseconds()))
					if recorder {
						cursor := string(field(m, `"cursor":"`))
						mu.Lock()
						events[cursor] = true
						mu.Unlock()
					}
				case "error", "complete":
					mu.Lock()
					rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %.200s", msgType, m))
					mu.Unlock()
				}
			}
		}()
	}
	holding.Store(true)
	fmt.Printf("ready: %d of %d connections\n", rep.Connected, *conns)
	var start, end int64
	if _, err := fmt.Fscanf(os.Stdin, "window %d %d\n", &start, &end); err != nil {
		return fmt.Errorf("read the window: %w", err)
	}
	from.Store(start)
	until.Store(end)
	time.Sleep(time.Until(time.Unix(0, end)) + grace)
	holding.Store(false)
	for _, c := range open {
		c.Close()
	}
	wg.Wait()
	rep.Events = len(events)
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// field returns the string value that follows key in a JSON message, up
// to the next quote.
func field(m []byte, key string) []byte {
	i := bytes.Index(m, []byte(key))
	if i < 0 {
		return nil
	}
	rest := m[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
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

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
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
