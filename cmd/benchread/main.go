// Command benchread measures the signed-in read path of issue 21 on two
// obsqra binaries, the starting commit's (-base) and the new one (-new):
// the dashboard with its protocols and pending suggestion, the first page
// of allocation history and of transactions, and the three in one
// document, for a user with a year of history.
//
// It creates a fresh PostgreSQL database, has the base binary migrate it
// and backfill the simulated market, seeds the user (registered through
// the API; a year of allocations and transactions inserted with SQL; a
// rebalance suggestion recorded through the API), and checks that every
// shape answers with data on both binaries. Then, per shape and round, it
// starts one binary, sends the shape's request back to back on -conns
// keep-alive connections for -warm and then for -duration, recording every
// latency, stops the binary, and does the same with the other: only one
// server runs at a time, on the same database. It prints requests per
// second and p50/p99 per (shape, round, server) and the ratio per shape,
// and fails (exit 1) when any request failed: a non-2xx answer or one
// with errors. The database is dropped at the end, also after an error or
// Ctrl-C.
//
// Usage (see `make bench-read`):
//
//	benchread -base bin/obsqra-base -new bin/obsqra [-conns 32] [-duration 10s] [-rounds 3] [-warm 3s] [-market-poll 1h]
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// options are the command line's.
type options struct {
	baseBin, newBin string
	pg              string // the PostgreSQL server's URL, with a database to connect to for CREATE DATABASE
	conns           int
	duration        time.Duration // of a measured round
	rounds          int
	warm            time.Duration // before each measured round, on the same connections
	marketPoll      time.Duration // the servers' MARKET_POLL_INTERVAL
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("benchread", flag.ContinueOnError)
	fs.StringVar(&o.baseBin, "base", "", "the obsqra binary built from the starting commit (required)")
	fs.StringVar(&o.newBin, "new", "", "the obsqra binary to compare with it (required)")
	fs.StringVar(&o.pg, "pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"PostgreSQL URL; the bench creates a database bench_read_<pid> on that server and drops it at the end")
	fs.IntVar(&o.conns, "conns", 32, "keep-alive connections, each sending one request after the other")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per round, shape and server")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per shape, each measuring base then new")
	fs.DurationVar(&o.warm, "warm", 3*time.Second, "unrecorded load before each measurement, after each start")
	fs.DurationVar(&o.marketPoll, "market-poll", time.Hour,
		"the servers' MARKET_POLL_INTERVAL; 5s makes the simulated market write during the measurement")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.conns < 1:
		return o, fmt.Errorf("-conns %d: want at least 1", o.conns)
	case o.duration <= 0:
		return o, fmt.Errorf("-duration %s: want more than 0", o.duration)
	case o.rounds < 1:
		return o, fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	case o.warm < 0:
		return o, fmt.Errorf("-warm %s: want 0 or more", o.warm)
	case o.marketPoll <= 0:
		return o, fmt.Errorf("-market-poll %s: want more than 0", o.marketPoll)
	}
	for _, b := range []struct {
		flag string
		path *string
	}{{"-base", &o.baseBin}, {"-new", &o.newBin}} {
		if *b.path == "" {
			return o, fmt.Errorf("%s is required", b.flag)
		}
		// A path, never looked for in PATH: bin/obsqra is the build's.
		p, err := filepath.Abs(*b.path)
		if err != nil {
			return o, fmt.Errorf("%s: %w", b.flag, err)
		}
		info, err := os.Stat(p)
		if err != nil {
			return o, fmt.Errorf("%s: %w", b.flag, err)
		}
		if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
			return o, fmt.Errorf("%s %s: not an executable file", b.flag, p)
		}
		*b.path = p
	}
	return o, nil
}

func main() {
	o, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchread:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchread:", err)
		os.Exit(1)
	}
}

// run is the whole bench: the database, the seeding and checks, the
// measurement.
func run(ctx context.Context, o options, out io.Writer) (err error) {
	work, err := os.MkdirTemp("", "benchread-")
	if err != nil {
		return fmt.Errorf("make a work directory: %w", err)
	}
	defer os.RemoveAll(work)

	name := fmt.Sprintf("bench_read_%d", os.Getpid())
	dbURL, err := databaseURL(o.pg, name)
	if err != nil {
		return err
	}
	if err := createDatabase(ctx, o.pg, name); err != nil {
		return err
	}
	defer func() {
		// ctx may have ended (Ctrl-C): the database is dropped all the same.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if dropErr := dropDatabase(ctx, o.pg, name); dropErr != nil {
			err = errors.Join(err, dropErr)
			return
		}
		fmt.Fprintf(out, "dropped database %s\n", name)
	}()
	fmt.Fprintf(out, "database %s on %s; servers' logs in %s\n", name, redacted(o.pg), work)

	secret, err := randomHex(32)
	if err != nil {
		return err
	}
	env := serverEnv(dbURL, work, secret, o.marketPoll)
	b := &bench{
		o:     o,
		out:   out,
		dbURL: dbURL,
		servers: [2]*server{
			{name: "base", bin: o.baseBin, env: env, logPath: filepath.Join(work, "base.log")},
			{name: "new", bin: o.newBin, env: env, logPath: filepath.Join(work, "new.log")},
		},
		client: &http.Client{Timeout: requestTimeout},
		shapes: shapes(),
	}
	if err := b.prepare(ctx, time.Now(), mathrand.New(mathrand.NewPCG(21, historyDays))); err != nil {
		return err
	}
	return b.measure(ctx)
}

// bench holds what the steps of a run share.
type bench struct {
	o       options
	out     io.Writer
	dbURL   string
	servers [2]*server // base, new
	client  *http.Client
	shapes  []shape
	token   string // the seeded user's access token
}

// prepare seeds the database with the base server running (its first
// start migrates the database and backfills the market), with history up
// to now made by rng, and checks every shape on both servers.
func (b *bench) prepare(ctx context.Context, now time.Time, rng *mathrand.Rand) error {
	base := b.servers[0]
	err := withServer(ctx, base, func() error {
		db, err := sql.Open("postgres", b.dbURL)
		if err != nil {
			return fmt.Errorf("open bench database: %w", err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := awaitBackfill(ctx, db); err != nil {
			return fmt.Errorf("%w\n%s", err, base.logTail())
		}
		c := gqlClient{http: b.client, url: base.url + "/graphql"}
		token, userID, err := registerUser(ctx, c, db)
		if err != nil {
			return err
		}
		b.token = token
		if err := seedHistory(ctx, db, userID, now, rng); err != nil {
			return err
		}
		sug, err := requestSuggestion(ctx, c, token)
		if err != nil {
			return err
		}
		sum, err := summarize(ctx, db, userID)
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "seeded user %d (%s): %d allocations, %d transactions with %d status steps (SQL), %d suggestion predictions (API)\n",
			userID, benchEmail, sum.allocations, sum.transactions, sum.txEvents, sum.predictions)
		fmt.Fprintf(b.out, "market: %d protocols, %d risk_scores rows, %d metrics_daily rows\n",
			sum.protocols, sum.riskScores, sum.dailyMetrics)
		if sug == nil {
			fmt.Fprintln(b.out, "suggestion: none (rebalanceSuggestion is null)")
		} else {
			fmt.Fprintf(b.out, "suggestion: %s, expected improvement %.1f bps, threshold %d bps, clears it: %t\n",
				sug.ID, sug.ExpectedImprovementBps, sug.ThresholdBps, sug.ClearsThreshold)
		}
		return b.verify(ctx, base)
	})
	if err != nil {
		return err
	}
	return withServer(ctx, b.servers[1], func() error { return b.verify(ctx, b.servers[1]) })
}

// verify sends every shape once to s and checks its answer.
func (b *bench) verify(ctx context.Context, s *server) error {
	c := gqlClient{http: b.client, url: s.url + "/graphql"}
	for _, sh := range b.shapes {
		answer, err := c.post(ctx, b.token, sh.body)
		if err != nil {
			return fmt.Errorf("%s on %s: %w", sh.name, s.name, err)
		}
		pending, err := sh.check(answer)
		if err != nil {
			return fmt.Errorf("%s server: %w", s.name, err)
		}
		note := ""
		if slices.Contains(sh.fields, "dashboard") {
			note = ", pendingSuggestion null"
			if pending {
				note = ", pendingSuggestion set"
			}
		}
		fmt.Fprintf(b.out, "%s on %s: %d bytes%s\n", sh.name, s.name, len(answer), note)
	}
	return nil
}

// measure runs the rounds of every shape, base then new in each, each on
// a freshly started server, and prints their figures.
func (b *bench) measure(ctx context.Context) error {
	for _, sh := range b.shapes {
		var served [2]uint64
		var elapsed [2]time.Duration
		all := [2]*hist{new(hist), new(hist)}
		for round := 1; round <= b.o.rounds; round++ {
			var res [2]result
			for i, s := range b.servers {
				err := withServer(ctx, s, func() error {
					l := load{url: s.url + "/graphql", auth: "Bearer " + b.token, body: sh.body, conns: b.o.conns}
					var err error
					res[i], err = l.measure(ctx, b.o.warm, b.o.duration)
					return err
				})
				if err != nil {
					return fmt.Errorf("%s round %d on %s: %w", sh.name, round, s.name, err)
				}
			}
			fmt.Fprintf(b.out, "%s round %d: base %s | new %s\n", sh.name, round, figures(res[0]), figures(res[1]))
			for i, r := range res {
				if r.failures > 0 {
					return fmt.Errorf("FAIL: %s round %d on %s: %d requests failed (each ends its connection's load); one: %s",
						sh.name, round, b.servers[i].name, r.failures, r.firstFailure)
				}
				served[i] += r.hist.count()
				elapsed[i] += r.elapsed
				all[i].merge(r.hist)
			}
		}
		rps := func(i int) float64 { return float64(served[i]) / elapsed[i].Seconds() }
		fmt.Fprintf(b.out, "%s: new/base = %.2f (rps), p99 new %s (base %s)\n",
			sh.name, rps(1)/rps(0), ms(all[1].quantile(0.99)), ms(all[0].quantile(0.99)))
	}
	return nil
}

// figures is a result as a line shows it.
func figures(r result) string {
	return fmt.Sprintf("%.0f rps p50 %s p99 %s", r.rps(), ms(r.hist.quantile(0.5)), ms(r.hist.quantile(0.99)))
}

// ms formats d in milliseconds: one decimal, two below a millisecond.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 1 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// redacted is u without its password, for the output.
func redacted(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}
