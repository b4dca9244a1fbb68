//go:build linux

// Command benchlive measures live delivery at scale: it starts an Obsqra
// server (SQLite in a temporary directory, the simulated market ticking
// every -tick), then load generators in processes of their own (a process
// may hold at most 20,000 open files here), each holding its share of -conns
// connections subscribed to riskScoreUpdated for all protocols: WebSockets
// (graphql-transport-ws), or with -transport sse one HTTP/1.1 POST each
// answered with an event stream (graphql-sse).
// For -duration it records, per delivery, the time from the score's commit
// (its computedAt, stamped in the unit of work that commits it) to its
// arrival, and at the end prints deliveries expected and made, dropped
// connections, latency percentiles, and the server's memory per connection.
//
// Usage (see `make bench-live`):
//
//	benchlive -server bin/obsqra -conns 15000 -generators 1 -duration 5m [-transport sse]
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/obsqra/obsqra"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "generate" {
		if err := generate(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchlive generate:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "replay" {
		if err := replayBench(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "benchlive replay:", err)
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
	// Replayed counts the window's scores a connection received after
	// reconnecting that were committed before it dropped: their latency
	// is the outage's, not in LatencyMs.
	Replayed    int64          `json:"replayed"`
	DropReasons map[string]int `json:"dropReasons"`
	// DroppedConns connections were dropped at least once; of the last
	// drop of each, in Unix milliseconds: when it happened, when the
	// connection was subscribed again, and when it received the first
	// score committed after the drop.
	DroppedConns    int     `json:"droppedConns"`
	DroppedAtMs     []int64 `json:"droppedAtMs"`
	ReconnectedAtMs []int64 `json:"reconnectedAtMs"`
	LiveAtMs        []int64 `json:"liveAtMs"`
	// RedialFailures counts reconnection attempts that failed (refused
	// while the server restarts, for one).
	RedialFailures int        `json:"redialFailures"`
	Check          *onceCheck `json:"check"`
}

func orchestrate(args []string) error {
	fs := flag.NewFlagSet("benchlive", flag.ContinueOnError)
	serverBin := fs.String("server", "bin/obsqra", "the obsqra binary")
	conns := fs.Int("conns", 15000, "subscriber connections in all")
	transport := fs.String("transport", transportWS, "ws: a WebSocket per subscriber (graphql-transport-ws); sse: an HTTP/1.1 POST per subscriber answered with an event stream (graphql-sse)")
	generators := fs.Int("generators", 1, "load generator processes (each may hold at most 20,000 open files)")
	duration := fs.Duration("duration", 5*time.Minute, "how long to hold the connections after they are all up")
	tick := fs.Duration("tick", 5*time.Second, "the market's poll interval: every protocol ticks together")
	restartAfter := fs.Duration("restart-after", 2*time.Minute, "restart the server this long into the window, as a deploy does (0: never); every connection reconnects and resumes from its last cursor")
	maxLive := fs.Duration("target-live", 15*time.Second, "target: every connection live again (its first score committed after the restart received) within this of SIGTERM")
	var serverEnv envFlag
	fs.Var(&serverEnv, "server-env", "KEY=VALUE added to the server's environment (repeatable), e.g. a per-address limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// url is the server's address for the generators.
	var url func(*serverProc) string
	switch *transport {
	case transportWS:
		url = (*serverProc).wsURL
	case transportSSE:
		url = (*serverProc).httpURL
	default:
		return fmt.Errorf("-transport %q: ws or sse", *transport)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "benchlive")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := newServerProc(*serverBin, dir, *tick, 30, serverEnv)
	if err != nil {
		return err
	}
	// A restart cancels every subscription, and the server may log each.
	serverLog := &logTail{w: os.Stderr, max: 10}
	srv.stderr = serverLog
	if err := srv.start(ctx); err != nil {
		return err
	}
	defer srv.stop()
	base := srv.base()
	baseRSS, _ := rssKiB(srv.pid())
	fmt.Printf("server pid %d ready on %s, RSS %d KiB before connections\n", srv.pid(), base, baseRSS)
	fmt.Printf("transport %s: %s\n", *transport, url(srv))

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
		cmd := exec.CommandContext(ctx, self, "generate", "-transport", *transport, "-url", url(srv),
			"-conns", strconv.Itoa(n), "-reconnect="+strconv.FormatBool(*restartAfter > 0))
		// The generator reads on one thread (an epoll loop): more would
		// only take turns with the server on the two cores.
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
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
	rss, _ := rssKiB(srv.pid())
	fds := openFiles(srv.pid())
	fmt.Printf("all %d connections up: server RSS %d KiB (%+d KiB, %.1f KiB per connection), %d open files\n",
		*conns, rss, rss-baseRSS, float64(rss-baseRSS)/float64(*conns), fds)
	// Every generator counts the scores committed in the same window, so
	// that each connection is expected to receive the same ones.
	from := time.Now()
	until := from.Add(*duration)
	for _, w := range windows {
		fmt.Fprintf(w, "window %d %d\n", from.UnixNano(), until.UnixNano())
	}

	steady := samplePeak(srv.pid, time.Second)
	var rs *restartStats
	if *restartAfter > 0 && *restartAfter < *duration {
		if err := obsqra.Sleep(ctx, time.Until(from.Add(*restartAfter))); err != nil {
			return err
		}
		steadyPeak := steady.stop()
		if rs, err = restart(ctx, srv); err != nil {
			return err
		}
		rs.steadyPeak, rs.at = steadyPeak, *restartAfter
		steady = samplePeak(srv.pid, time.Second)
	}
	// After the window and the generators' grace, the reference: every
	// score committed in the window, from the database.
	if err := obsqra.Sleep(ctx, time.Until(until.Add(grace+time.Second))); err != nil {
		return err
	}
	ref, refErr := committedScores(ctx, srv, from, until)
	line := "reference -\n"
	if refErr == nil {
		var b strings.Builder
		b.WriteString("reference")
		for _, id := range ref {
			b.WriteString(" " + strconv.FormatInt(id, 10))
		}
		line = b.String() + "\n"
	}
	for _, w := range windows {
		io.WriteString(w, line)
		w.Close()
	}

	all := report{DropReasons: map[string]int{}}
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
		all.Replayed += r.Replayed
		for k, v := range r.DropReasons {
			all.DropReasons[k] += v
		}
		all.DroppedConns += r.DroppedConns
		all.DroppedAtMs = append(all.DroppedAtMs, r.DroppedAtMs...)
		all.ReconnectedAtMs = append(all.ReconnectedAtMs, r.ReconnectedAtMs...)
		all.LiveAtMs = append(all.LiveAtMs, r.LiveAtMs...)
		all.RedialFailures += r.RedialFailures
		all.Check = addChecks(all.Check, r.Check)
	}
	for _, cmd := range cmds {
		cmd.Wait()
	}
	peak := steady.stop()
	if rs != nil {
		rs.afterPeak = peak
		peak = rs.steadyPeak // memory per connection is the steady state's
	}
	slices.Sort(all.LatencyMs)
	pct := func(p float64) int32 {
		if len(all.LatencyMs) == 0 {
			return -1
		}
		return all.LatencyMs[min(len(all.LatencyMs)-1, int(p*float64(len(all.LatencyMs))))]
	}
	expected := int64(all.Events) * int64(all.Conns)
	if all.Check != nil {
		expected = int64(all.Check.Reference) * int64(all.Conns)
	}
	fmt.Printf("connections %d, connected %d, dropped %d\n", all.Conns, all.Connected, all.Dropped)
	fmt.Printf("events %d, deliveries %d of %d expected (%.3f%%)\n", all.Events, all.Deliveries, expected,
		100*float64(all.Deliveries)/float64(max(expected, 1)))
	fmt.Printf("scores per connection: %d to %d\n", all.MinPerConn, all.MaxPerConn)
	fmt.Printf("latency from commit: min %d ms, p50 %d ms, p90 %d ms, p99 %d ms, max %d ms", pct(0), pct(0.5), pct(0.9), pct(0.99), pct(1))
	if all.Replayed > 0 {
		fmt.Printf(" (besides %d scores committed before their connection dropped and replayed after)", all.Replayed)
	}
	fmt.Println()
	fmt.Printf("server peak RSS %d KiB: %.1f KiB per connection above the idle server\n",
		peak, float64(peak-baseRSS)/float64(all.Conns))
	if rs != nil {
		rs.print(&all, *maxLive)
	}
	printCheck(all.Check, refErr)
	fmt.Printf("server log: %d lines (the first 10 shown above)\n", serverLog.count())
	for i, e := range all.Errors {
		if i == 10 {
			fmt.Printf("… %d more errors\n", len(all.Errors)-10)
			break
		}
		fmt.Println("error:", e)
	}
	return nil
}

// restartStats is what a restart of the server measured.
type restartStats struct {
	at                     time.Duration // into the window
	sigterm, exited, ready time.Time
	before                 int64 // the old server's RSS at SIGTERM, KiB
	steadyPeak             int64 // its peak before, KiB
	stormPeak              int64 // the new server's peak in its first 30 s, KiB
	afterPeak              int64 // its peak to the end, KiB
}

// restart stops the server (SIGTERM: it closes every WebSocket with 1001,
// and ends every event stream without its complete)
// and starts it again on the same database and port, as a deploy does,
// and samples the new server's memory during the reconnection storm.
func restart(ctx context.Context, srv *serverProc) (*restartStats, error) {
	rs := &restartStats{}
	rs.before, _ = rssKiB(srv.pid())
	fmt.Printf("restarting the server (pid %d, RSS %d KiB)\n", srv.pid(), rs.before)
	rs.sigterm = time.Now()
	if err := srv.stop(); err != nil {
		return nil, err
	}
	rs.exited = time.Now()
	// Sampling starts with the process, before it is ready: the storm
	// begins as soon as it listens.
	storm := make(chan int64, 1)
	started := make(chan struct{})
	go func() {
		<-started
		p := samplePeak(srv.pid, 100*time.Millisecond)
		obsqra.Sleep(ctx, 30*time.Second)
		storm <- p.stop()
	}()
	err := srv.startThen(ctx, func() { close(started) })
	if err != nil {
		return nil, err
	}
	rs.ready = time.Now()
	fmt.Printf("server restarted (pid %d): exited %v after SIGTERM, ready %v after\n", srv.pid(),
		rs.exited.Sub(rs.sigterm).Round(time.Millisecond), rs.ready.Sub(rs.sigterm).Round(time.Millisecond))
	rs.stormPeak = <-storm
	return rs, nil
}

// print prints the restart's figures: the reconnection storm, measured
// from SIGTERM.
func (rs *restartStats) print(all *report, maxLive time.Duration) {
	since := func(ms []int64) (n int, p50, p99, last time.Duration) {
		if len(ms) == 0 {
			return 0, -1, -1, -1
		}
		slices.Sort(ms)
		at := func(p float64) time.Duration {
			return time.UnixMilli(ms[min(len(ms)-1, int(p*float64(len(ms))))]).Sub(rs.sigterm).Round(time.Millisecond)
		}
		return len(ms), at(0.5), at(0.99), at(1)
	}
	fmt.Printf("restart %v into the window: the server exited %v after SIGTERM, the new one was ready after %v\n",
		rs.at, rs.exited.Sub(rs.sigterm).Round(time.Millisecond), rs.ready.Sub(rs.sigterm).Round(time.Millisecond))
	fmt.Printf("  connections dropped: %d (", all.DroppedConns)
	for i, k := range slices.Sorted(maps.Keys(all.DropReasons)) {
		if i > 0 {
			fmt.Print("; ")
		}
		fmt.Printf("%q ×%d", k, all.DropReasons[k])
	}
	fmt.Printf("), failed reconnection attempts %d\n", all.RedialFailures)
	n, p50, p99, last := since(all.ReconnectedAtMs)
	fmt.Printf("  subscribed again: %d of %d, after SIGTERM p50 %v, p99 %v, last %v\n", n, all.DroppedConns, p50, p99, last)
	n, p50, p99, last = since(all.LiveAtMs)
	fmt.Printf("  live again (received the first score committed after the drop): %d of %d, after SIGTERM p50 %v, p99 %v, last %v\n",
		n, all.DroppedConns, p50, p99, last)
	fmt.Printf("  server memory: RSS %d KiB at SIGTERM (peak %d KiB before); the new server's peak %d KiB in its first 30 s, %d KiB to the end\n",
		rs.before, rs.steadyPeak, rs.stormPeak, rs.afterPeak)
	ok := n == all.Connected && n > 0 && last < maxLive
	fmt.Printf("  %s  every connection live again within %v of SIGTERM: %d of %d, the last after %v\n",
		verdict(ok), maxLive, n, all.Connected, last)
}

// committedScores returns the ids of the scores committed in [from,
// until) (by computedAt, as the generators count them), ascending.
func committedScores(ctx context.Context, srv *serverProc, from, until time.Time) ([]int64, error) {
	db, err := srv.openDB()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT id, json_extract(payload, '$.computedAt') FROM events WHERE topic = ? ORDER BY id",
		obsqra.TopicRiskScored)
	if err != nil {
		return nil, fmt.Errorf("read the scores committed: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		var at string
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("read the scores committed: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return nil, fmt.Errorf("score event %d: computedAt: %w", id, err)
		}
		if !t.Before(from) && t.Before(until) {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

// addChecks sums two generators' checks.
func addChecks(a, b *onceCheck) *onceCheck {
	if a == nil || b == nil {
		return cmp.Or(a, b)
	}
	return &onceCheck{Reference: a.Reference, Exact: a.Exact + b.Exact, Gaps: a.Gaps + b.Gaps, Missing: a.Missing + b.Missing,
		Late: a.Late + b.Late, LateScores: a.LateScores + b.LateScores,
		Dups: a.Dups + b.Dups, Duplicates: a.Duplicates + b.Duplicates, Unordered: a.Unordered + b.Unordered,
		Unexpected: a.Unexpected + b.Unexpected}
}

func printCheck(c *onceCheck, refErr error) {
	if c == nil {
		fmt.Printf("exactly once: not checked (%v)\n", refErr)
		return
	}
	fmt.Printf("exactly once, in order: %d scores committed in the window (outbox); connections that received exactly those: %d\n",
		c.Reference, c.Exact)
	fmt.Printf("  with gaps %d (%d scores missing before a later one arrived), with duplicates %d (%d deliveries), out of order %d, scores not committed in the window %d\n",
		c.Gaps, c.Missing, c.Dups, c.Duplicates, c.Unordered, c.Unexpected)
	fmt.Printf("  still waiting for the window's last scores when reading stopped (%v after it): %d connections, %d scores\n",
		grace, c.Late, c.LateScores)
}

// verdict is PASS or FAIL.
func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

// grace is how long a generator keeps reading after its window closes.
const grace = 3 * time.Second

// liveQuery is the subscription of every connection to the live scores.
const liveQuery = `subscription { riskScoreUpdated { cursor riskScore { score computedAt protocol { slug } } } }`

// subscription is the graphql-transport-ws message that subscribes with
// liveQuery.
const subscription = `{"id":"1","type":"subscribe","payload":{"query":"` + liveQuery + `"}}`

// resumeQuery is the subscription of a reconnection: the same, after the
// last cursor received.
const resumeQuery = `subscription($after: String) { riskScoreUpdated(after: $after) { cursor riskScore { score computedAt protocol { slug } } } }`

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
