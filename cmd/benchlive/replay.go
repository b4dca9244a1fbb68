//go:build linux

package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"github.com/obsqra/obsqra"
)

// `benchlive replay` measures what subscriptions that replay the outbox
// from an early cursor cost the server: a few anonymous sockets, each with
// many metricsUpdated(after: …) subscriptions, first read by clients that
// read normally, then by clients that never read (the kernel buffers fill,
// and whatever the server cannot write waits in its memory). Meanwhile an
// observer subscribed live to riskScoreUpdated measures how late everyone
// else's events arrive. Each phase runs on a freshly started server (same
// database), so that it starts from the same memory.

// replayQuery is the subscription of the security review's report.
const replayQuery = `subscription($after: String) { metricsUpdated(after: $after) { cursor metrics { id apyBps tvlUsd protocol { slug name } } } }`

// replayPhase is one phase of the replay bench.
type replayPhase struct {
	name    string
	sockets int
	read    bool // the clients read their sockets
}

// replayConfig is what every phase shares.
type replayConfig struct {
	subs     int // subscriptions per socket
	after    int64
	duration time.Duration
	settle   time.Duration
	maxRSS   int64 // KiB
	log      *logTail
}

func replayBench(args []string) error {
	fs := flag.NewFlagSet("benchlive replay", flag.ContinueOnError)
	serverBin := fs.String("server", "bin/obsqra", "the obsqra binary")
	tick := fs.Duration("tick", 5*time.Second, "the market's poll interval")
	historyDays := fs.Int("history-days", 500, "days of simulated history backfilled (two outbox events per protocol and day)")
	minEvents := fs.Int("min-events", 5000, "outbox events the backfill must leave before the phases start")
	after := fs.Int64("after-id", 0, "the event id whose cursor the replaying subscriptions pass as after")
	subs := fs.Int("subs", 100, "subscriptions per socket")
	reading := fs.Int("reading-sockets", 4, "sockets of the reading phase (0: skip it)")
	never := fs.Int("never-sockets", 30, "sockets of the never-reading phase (0: skip it)")
	duration := fs.Duration("phase", 45*time.Second, "how long each phase holds its sockets")
	settle := fs.Duration("settle", 3*time.Second, "how long a freshly started server idles before its baseline memory is read")
	maxGrowth := fs.Float64("target-growth-mib", 200, "target: server memory growth (peak minus baseline) below this, in MiB")
	maxP99 := fs.Duration("target-p99", 500*time.Millisecond, "target: the observer's p99 latency from commit below this")
	maxRSS := fs.Int64("max-rss-mib", 3072, "end a phase early when the server's RSS passes this, in MiB (the machine is shared)")
	logLines := fs.Int("server-log-lines", 5, "lines of the server's log shown per phase (the rest are counted)")
	var serverEnv envFlag
	fs.Var(&serverEnv, "server-env", "KEY=VALUE added to the server's environment (repeatable), e.g. MAX_SOCKETS_PER_ADDRESS=8")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "benchreplay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := newServerProc(*serverBin, dir, *tick, *historyDays, serverEnv)
	if err != nil {
		return err
	}
	serverLog := &logTail{w: os.Stdout, max: *logLines}
	srv.stderr = serverLog
	if err := srv.start(ctx); err != nil {
		return err
	}
	db, err := srv.openDB()
	if err != nil {
		srv.stop()
		return err
	}
	defer db.Close()
	total, err := awaitOutbox(ctx, db, *minEvents)
	if stopErr := srv.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return err
	}
	fmt.Printf("outbox: %d events after the backfill (%d days); the replaying subscriptions start after event %d (cursor %s)\n",
		total, *historyDays, *after, obsqra.EventCursor(*after))
	if len(serverEnv) > 0 {
		fmt.Printf("server environment: %s\n", serverEnv.String())
	}

	cfg := replayConfig{subs: *subs, after: *after, duration: *duration, settle: *settle, maxRSS: *maxRSS << 10, log: serverLog}
	for _, ph := range []replayPhase{{"reading", *reading, true}, {"never-reading", *never, false}} {
		if ph.sockets <= 0 {
			continue
		}
		res, err := runReplayPhase(ctx, srv, db, cfg, ph)
		if err != nil {
			return fmt.Errorf("phase %s: %w", ph.name, err)
		}
		res.print(*maxGrowth, *maxP99)
	}
	return nil
}

// awaitOutbox waits until the outbox holds at least n events and returns
// how many it holds.
func awaitOutbox(ctx context.Context, db *sql.DB, n int) (int, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var count int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM events").Scan(&count)
		if err == nil && count >= n {
			return count, nil
		}
		if time.Now().After(deadline) {
			return count, fmt.Errorf("the outbox holds %d events after two minutes, want %d (err %v): raise -history-days", count, n, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// replayResult is what one phase measured.
type replayResult struct {
	phase      replayPhase
	subs       int
	toReplay   int // metricsUpdated events after the cursor when the phase began
	duration   time.Duration
	cut        string // why the phase ended early, if it did
	logLines   int    // lines the server logged during the phase
	before     memory
	peak       int64 // highest VmRSS sampled during the phase
	end        memory
	shutdown   time.Duration // from SIGTERM to exit at the end of the phase
	connected  int
	refused    map[string]int // sockets that never got to subscribe, by reason
	delivered  int64          // events the replaying clients read
	caughtUp   int            // subscriptions that received every event to replay
	closed     map[string]int // sockets closed by the server, by close code
	closedAt   []time.Duration
	openBytes  int64 // bytes waiting unread in the kernel for sockets still open (never-reading)
	errors     int   // GraphQL error messages
	limited    int   // of which RATE_LIMITED
	errSamples []string
	observer   observerResult
}

func runReplayPhase(ctx context.Context, srv *serverProc, db *sql.DB, cfg replayConfig, ph replayPhase) (*replayResult, error) {
	res := &replayResult{phase: ph, subs: cfg.subs, duration: cfg.duration, refused: map[string]int{}, closed: map[string]int{}}
	if err := srv.start(ctx); err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.stop()
		}
	}()
	if err := obsqra.Sleep(ctx, cfg.settle); err != nil {
		return nil, err
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM events WHERE topic = ? AND id > ?",
		obsqra.TopicMetricsIngested, cfg.after).Scan(&res.toReplay); err != nil {
		return nil, fmt.Errorf("count the events to replay: %w", err)
	}
	var err error
	if res.before, err = memoryOf(srv.pid()); err != nil {
		return nil, err
	}
	cfg.log.reset()
	fmt.Printf("\nphase %s: server pid %d, RSS %.1f MiB, VmHWM %.1f MiB before the sockets\n",
		ph.name, srv.pid(), mib(res.before.rss), mib(res.before.hwm))

	var lastID int64
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM events").Scan(&lastID); err != nil {
		return nil, fmt.Errorf("read the last event: %w", err)
	}
	obs, err := startObserver(ctx, srv.wsURL())
	if err != nil {
		return nil, fmt.Errorf("observer: %w", err)
	}
	sampler := samplePeak(srv.pid, 100*time.Millisecond)
	start := time.Now()
	clients := make([]*stormClient, ph.sockets)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { clients[i] = dialStorm(srv.wsURL(), cfg.subs, obsqra.EventCursor(cfg.after), ph.read, start) })
	}
	wg.Wait()
	for _, c := range clients {
		if c.refused != "" {
			res.refused[c.refused]++
		} else {
			res.connected++
		}
	}
	fmt.Printf("phase %s: %d of %d sockets subscribed in %v\n", ph.name, res.connected, ph.sockets, time.Since(start).Round(time.Millisecond))
	// A progress line every 10 s, so that a long phase shows where memory
	// goes; the phase ends early when the server's memory passes the cap.
	progress := time.NewTicker(10 * time.Second)
	capCheck := time.NewTicker(100 * time.Millisecond)
	defer capCheck.Stop()
	deadline := time.NewTimer(cfg.duration)
wait:
	for {
		select {
		case <-ctx.Done():
			progress.Stop()
			return nil, ctx.Err()
		case <-capCheck.C:
			if m, err := memoryOf(srv.pid()); err == nil && m.rss > cfg.maxRSS {
				res.cut = fmt.Sprintf("ended after %v: server RSS %.1f MiB passed -max-rss-mib %.0f",
					time.Since(start).Round(100*time.Millisecond), mib(m.rss), mib(cfg.maxRSS))
				break wait
			}
		case <-progress.C:
			m, _ := memoryOf(srv.pid())
			var delivered int64
			for _, c := range clients {
				delivered += c.nexts.Load()
			}
			fmt.Printf("  %3.0f s: server RSS %.1f MiB; %d events read by the replaying clients; observer: %d events\n",
				time.Since(start).Seconds(), mib(m.rss), delivered, obs.count.Load())
		case <-deadline.C:
			break wait
		}
	}
	progress.Stop()
	res.end, _ = memoryOf(srv.pid())
	res.peak = max(sampler.stop(), res.end.rss)
	if res.observer, err = obs.stop(ctx, db, lastID); err != nil {
		return nil, err
	}
	for _, c := range clients {
		c.finish()
		res.delivered += c.nexts.Load()
		for _, n := range c.perSub {
			if n >= res.toReplay {
				res.caughtUp++
			}
		}
		if c.closeCode != "" {
			res.closed[c.closeCode]++
			res.closedAt = append(res.closedAt, c.closedAt)
		}
		res.openBytes += c.unread
		res.errors += c.errors
		res.limited += c.limited
		if len(res.errSamples) < 3 && c.firstErr != "" {
			res.errSamples = append(res.errSamples, c.firstErr)
		}
	}
	res.logLines = cfg.log.reset()
	t := time.Now()
	err = srv.stop()
	stopped = true
	res.shutdown = time.Since(t)
	return res, err
}

func (r *replayResult) print(maxGrowthMiB float64, maxP99 time.Duration) {
	ph := r.phase
	fmt.Printf("phase %s: %d sockets × %d metricsUpdated(after) subscriptions, %d events to replay each (%d in all), held %v\n",
		ph.name, ph.sockets, r.subs, r.toReplay, int64(r.toReplay)*int64(r.subs)*int64(ph.sockets), r.duration)
	if r.cut != "" {
		fmt.Printf("  phase %s\n", r.cut)
	}
	growth := mib(r.peak - r.before.rss)
	fmt.Printf("  server memory: RSS %.1f MiB before, peak %.1f MiB, %.1f MiB at the end (VmHWM %.1f MiB): growth %.1f MiB\n",
		mib(r.before.rss), mib(r.peak), mib(r.end.rss), mib(r.end.hwm), growth)
	fmt.Printf("  sockets: %d subscribed", r.connected)
	for _, k := range slices.Sorted(maps.Keys(r.refused)) {
		fmt.Printf(", %d refused (%s)", r.refused[k], k)
	}
	fmt.Println()
	if ph.read {
		fmt.Printf("  events read by the replaying clients: %d; subscriptions that received their whole replay: %d of %d\n",
			r.delivered, r.caughtUp, r.connected*r.subs)
	} else {
		fmt.Printf("  events found in the buffers of the sockets the server closed: %d; bytes left unread in the kernel by the sockets still open: %d\n",
			r.delivered, r.openBytes)
	}
	n := 0
	for _, v := range r.closed {
		n += v
	}
	fmt.Printf("  sockets closed by the server: %d of %d", n, r.connected)
	for _, k := range slices.Sorted(maps.Keys(r.closed)) {
		fmt.Printf(", %s ×%d", k, r.closed[k])
	}
	if len(r.closedAt) > 0 {
		slices.Sort(r.closedAt)
		fmt.Printf(" (first %v, last %v after the phase began)", r.closedAt[0].Round(time.Millisecond), r.closedAt[len(r.closedAt)-1].Round(time.Millisecond))
	}
	fmt.Println()
	fmt.Printf("  GraphQL errors: %d, of which RATE_LIMITED %d\n", r.errors, r.limited)
	for _, e := range r.errSamples {
		fmt.Printf("    e.g. %.200s\n", e)
	}
	o := r.observer
	fmt.Printf("  observer (riskScoreUpdated, live): %d scores committed, %d arrived, latency from commit p50 %d ms, p99 %d ms, max %d ms",
		o.committed, o.committed-o.missing, o.pct(0.5), o.pct(0.99), o.pct(1))
	if o.missing > 0 {
		fmt.Printf(" (the %d that never arrived counted at their age at the end, a lower bound)", o.missing)
	}
	if o.ended != "" {
		fmt.Printf("; its socket ended: %s", o.ended)
	}
	fmt.Println()
	if o.committed == 0 {
		fmt.Println("  no score was committed while the observer listened: the market's ticks did not commit during the phase")
	}
	fmt.Printf("  server log: %d lines during the phase; its shutdown after the phase took %v\n", r.logLines, r.shutdown.Round(time.Millisecond))
	fmt.Printf("  %s  phase %s: memory growth %.1f MiB (target < %.0f MiB)\n", verdict(growth < maxGrowthMiB), ph.name, growth, maxGrowthMiB)
	p99 := time.Duration(o.pct(0.99)) * time.Millisecond
	fmt.Printf("  %s  phase %s: observer p99 %d ms over %d scores (target < %d ms)\n",
		verdict(len(o.latencyMs) > 0 && p99 < maxP99), ph.name, o.pct(0.99), len(o.latencyMs), maxP99.Milliseconds())
}

// stormClient is one socket of the replay storm: one connection, subs
// subscriptions from the same cursor.
type stormClient struct {
	conn    *websocket.Conn
	read    bool
	start   time.Time
	closing atomic.Bool // we are closing it: its read error is ours
	done    chan struct{}

	refused string // why it never subscribed, if it did not

	// Written by the reading goroutine (or finish), read after done.
	nexts     atomic.Int64
	perSub    map[string]int
	errors    int
	limited   int
	firstErr  string
	closeCode string // how the server closed the socket, "" if it did not
	closedAt  time.Duration
	unread    int64 // never-reading: bytes the kernel holds for a socket still open at the end
}

// dialStorm connects, initialises and sends subs subscriptions from
// cursor; a reading client then reads in a goroutine of its own, a
// never-reading one only keeps the connection alive (a pong frame every
// 10 s, which any client may send unasked) and watches for the server's
// close.
func dialStorm(url string, subs int, cursor string, read bool, start time.Time) *stormClient {
	c := &stormClient{read: read, start: start, perSub: map[string]int{}, done: make(chan struct{})}
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Subprotocols: []string{"graphql-transport-ws"}}
	conn, resp, err := dialer.Dial(url, nil)
	if err != nil {
		if resp != nil {
			c.refused = "HTTP " + strconv.Itoa(resp.StatusCode)
		} else {
			c.refused = "dial: " + err.Error()
		}
		close(c.done)
		return c
	}
	c.conn = conn
	if err := initConn(conn); err != nil {
		c.refused = err.Error()
		conn.Close()
		close(c.done)
		return c
	}
	for i := range subs {
		msg := fmt.Sprintf(`{"id":"%d","type":"subscribe","payload":{"query":%q,"variables":{"after":%q}}}`, i+1, replayQuery, cursor)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			c.refused = "subscribe: " + err.Error()
			conn.Close()
			close(c.done)
			return c
		}
	}
	if read {
		go c.readLoop()
	} else {
		go c.watch()
	}
	return c
}

// initConn sends connection_init and waits for the ack.
func initConn(conn *websocket.Conn) error {
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_init"}`)); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	_, m, err := conn.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return fmt.Errorf("closed before the ack: %d %s", ce.Code, ce.Text)
		}
		return fmt.Errorf("init: %w", err)
	}
	if !strings.Contains(string(m), `"connection_ack"`) {
		return fmt.Errorf("init: %.100s", m)
	}
	return nil
}

// readLoop reads like a normal client (gorilla answers the pings).
func (c *stormClient) readLoop() {
	defer close(c.done)
	for {
		_, m, err := c.conn.ReadMessage()
		if err != nil {
			if !c.closing.Load() {
				c.serverClosed(err)
			}
			return
		}
		c.message(m)
	}
}

// message tallies one message.
func (c *stormClient) message(m []byte) {
	switch string(field(m, `"type":"`)) {
	case "next":
		c.nexts.Add(1)
		c.perSub[string(field(m, `"id":"`))]++
	case "error":
		c.errors++
		if strings.Contains(string(m), "RATE_LIMITED") {
			c.limited++
		}
		if c.firstErr == "" {
			c.firstErr = string(m)
		}
	}
}

// serverClosed records how the server ended the connection.
func (c *stormClient) serverClosed(err error) {
	c.closedAt = time.Since(c.start)
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		c.closeCode = strconv.Itoa(ce.Code)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		c.closeCode = "EOF without a close frame"
	case errors.Is(err, syscall.ECONNRESET):
		c.closeCode = "reset"
	default:
		c.closeCode = "read error: " + err.Error()
	}
}

// watch keeps a never-reading connection alive and notes when the server
// closes it (the socket becomes readable to its end: POLLRDHUP), without
// reading anything.
func (c *stormClient) watch() {
	defer close(c.done)
	fd, err := rawFD(c.conn.NetConn())
	if err != nil {
		c.firstErr = err.Error()
		return
	}
	pong := time.NewTicker(10 * time.Second)
	defer pong.Stop()
	check := time.NewTicker(100 * time.Millisecond)
	defer check.Stop()
	for !c.closing.Load() {
		select {
		case <-pong.C:
			_ = c.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
		case <-check.C:
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, _ := unix.Poll(pfd, 0); n > 0 && pfd[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			c.closedAt = time.Since(c.start)
			c.closeCode = "pending" // read at the end of the phase
			return
		}
	}
}

// rawFD returns the descriptor of a TCP connection (owned by it).
func rawFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := raw.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// finish ends the client at the end of its phase. A never-reading socket
// the server closed is read to its end for the close code and the events
// it held; one still open is measured (the bytes the kernel holds) and
// closed.
func (c *stormClient) finish() {
	if c.conn == nil {
		return
	}
	c.closing.Store(true)
	if c.read {
		c.conn.Close()
		<-c.done
		return
	}
	<-c.done
	defer c.conn.Close()
	if c.closeCode == "" {
		if fd, err := rawFD(c.conn.NetConn()); err == nil {
			n, _ := unix.IoctlGetInt(fd, unix.SIOCINQ)
			c.unread = int64(n)
		}
		return
	}
	// The server closed it: what it holds is finite. Frames are parsed
	// by hand, since gorilla would answer the pings in the backlog.
	nc := c.conn.NetConn()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256<<10)
	var pending []byte
	c.closeCode = "EOF without a close frame"
	sawClose := false
	for {
		n, err := nc.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			op, payload, size, ok := parseFrame(pending)
			if !ok {
				break
			}
			switch op {
			case websocket.CloseMessage:
				sawClose = true
				c.closeCode = "close frame without a code"
				if len(payload) >= 2 {
					c.closeCode = strconv.Itoa(int(payload[0])<<8 | int(payload[1]))
				}
			case websocket.TextMessage:
				c.message(payload)
			}
			pending = pending[size:]
		}
		pending = append([]byte(nil), pending...) // let the parsed start go
		if err != nil {
			if !errors.Is(err, io.EOF) && !sawClose {
				c.closeCode = "read error: " + err.Error()
			}
			return
		}
	}
}

// observer is a live riskScoreUpdated subscriber that measures latency
// from commit (riskScore.computedAt) to arrival.
type observer struct {
	conn    *websocket.Conn
	closing atomic.Bool
	done    chan struct{}
	count   atomic.Int64

	// The reading goroutine's, read after done.
	res      observerResult
	received map[string]bool // cursors
}

// observerResult is what an observer measured.
type observerResult struct {
	latencyMs []int32 // sorted once stopped
	ended     string  // how the server ended its socket, if it did
	// committed and missing count the scores committed while the observer
	// listened, and those of them that never arrived: each missing one is
	// in latencyMs at its age when the observer stopped (a lower bound),
	// so that a server too busy to deliver anything does not look fast.
	committed, missing int
}

// pct returns the p-th latency percentile, -1 when none was measured.
func (o observerResult) pct(p float64) int32 {
	if len(o.latencyMs) == 0 {
		return -1
	}
	return o.latencyMs[min(len(o.latencyMs)-1, int(p*float64(len(o.latencyMs))))]
}

func startObserver(ctx context.Context, url string) (*observer, error) {
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, Subprotocols: []string{"graphql-transport-ws"}}
	conn, _, err := dialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	if err := initConn(conn); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(subscription)); err != nil {
		conn.Close()
		return nil, err
	}
	o := &observer{conn: conn, done: make(chan struct{}), received: map[string]bool{}}
	go func() {
		defer close(o.done)
		for {
			_, m, err := conn.ReadMessage()
			now := time.Now()
			if err != nil {
				if !o.closing.Load() {
					o.res.ended = err.Error()
				}
				return
			}
			switch string(field(m, `"type":"`)) {
			case "next":
				computed, err := time.Parse(time.RFC3339Nano, string(field(m, `"computedAt":"`)))
				if err == nil {
					o.res.latencyMs = append(o.res.latencyMs, int32(now.Sub(computed).Milliseconds()))
					o.received[string(field(m, `"cursor":"`))] = true
					o.count.Add(1)
				}
			case "error", "complete":
				o.res.ended = fmt.Sprintf("%.200s", m)
			}
		}
	}()
	return o, nil
}

// stop closes the observer and returns its measures: scores committed
// after event from (read from db) that never arrived count at their age.
func (o *observer) stop(ctx context.Context, db *sql.DB, from int64) (observerResult, error) {
	o.closing.Store(true)
	o.conn.Close()
	<-o.done
	now := time.Now()
	rows, err := db.QueryContext(ctx, "SELECT id, json_extract(payload, '$.computedAt') FROM events WHERE topic = ? AND id > ?",
		obsqra.TopicRiskScored, from)
	if err != nil {
		return o.res, fmt.Errorf("read the scores committed: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var at string
		if err := rows.Scan(&id, &at); err != nil {
			return o.res, fmt.Errorf("read the scores committed: %w", err)
		}
		o.res.committed++
		if o.received[obsqra.EventCursor(id)] {
			continue
		}
		if computed, err := time.Parse(time.RFC3339Nano, at); err == nil {
			o.res.missing++
			o.res.latencyMs = append(o.res.latencyMs, int32(now.Sub(computed).Milliseconds()))
		}
	}
	slices.Sort(o.res.latencyMs)
	return o.res, rows.Err()
}
