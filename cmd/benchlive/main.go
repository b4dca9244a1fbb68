// Command benchlive measures live delivery at scale: it starts an Obsqra
// server (SQLite in a temporary directory, the simulated market ticking
// every -tick), then load generators in processes of their own (a process
// may hold at most 20,000 open files here), each holding its share of -conns
// WebSocket connections subscribed to riskScoreUpdated for all protocols.
// For -duration it records, per delivery, the time from the score's commit
// (its computedAt, stamped in the unit of work that commits it) to its
// arrival, and at the end prints deliveries expected and made, dropped
// connections, latency percentiles, and the server's memory per connection.
//
// Usage (see `make bench-live`):
//
//	benchlive -server bin/obsqra -conns 15000 -generators 1 -duration 5m
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
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
}

func orchestrate(args []string) error {
	fs := flag.NewFlagSet("benchlive", flag.ContinueOnError)
	serverBin := fs.String("server", "bin/obsqra", "the obsqra binary")
	conns := fs.Int("conns", 15000, "WebSocket connections in all")
	generators := fs.Int("generators", 1, "load generator processes (each may hold at most 20,000 open files)")
	duration := fs.Duration("duration", 5*time.Minute, "how long to hold the connections after they are all up")
	tick := fs.Duration("tick", 5*time.Second, "the market's poll interval: every protocol ticks together")
	var serverEnv envFlag
	fs.Var(&serverEnv, "server-env", "KEY=VALUE added to the server's environment (repeatable), e.g. a per-address limit")
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
	srv, err := newServerProc(*serverBin, dir, *tick, 30, serverEnv)
	if err != nil {
		return err
	}
	if err := srv.start(ctx); err != nil {
		return err
	}
	defer srv.stop()
	base := srv.base()
	baseRSS, _ := rssKiB(srv.pid())
	fmt.Printf("server pid %d ready on %s, RSS %d KiB before connections\n", srv.pid(), base, baseRSS)

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
		cmd := exec.CommandContext(ctx, self, "generate", "-url", srv.wsURL(),
			"-conns", strconv.Itoa(n))
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
				if r, err := rssKiB(srv.pid()); err == nil && r > peakRSS.Load() {
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
