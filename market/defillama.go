package market

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
)

// DefaultDefiLlamaURL is the base URL of DefiLlama's public yields API.
const DefaultDefiLlamaURL = "https://yields.llama.fi"

// Keys of obsqra.Protocol.SourceIDs that DefiLlama reads.
const (
	// DefiLlamaPoolID names one pool by its DefiLlama uuid (the "pool"
	// field of /pools). It wins over DefiLlamaProject.
	DefiLlamaPoolID = "defillama_pool"
	// DefiLlamaProject names the protocol's DefiLlama project slug
	// ("zklend", "nostra-money-market", "ekubo" …); the pool is the one of
	// that project on the protocol's chain with the highest TVL.
	DefiLlamaProject = "defillama_project"
)

// Bounds beyond which a figure from the feed is taken for an error in the
// feed rather than for a market: the row is skipped, not ingested.
var (
	// A pool cannot lose more than everything it holds.
	llamaMinAPY = big.NewRat(-100, 1)
	// 100 000 % is 10⁷ bps, the most ml's optimiser accepts.
	llamaMaxAPY = big.NewRat(100_000, 1)
	// One trillion USD is more than all of DeFi holds.
	llamaMaxTVL = big.NewRat(1_000_000_000_000, 1)
)

// DefiLlamaConfig configures a DefiLlama source. Zero fields take their
// defaults.
type DefiLlamaConfig struct {
	// BaseURL is the yields API's base URL. Default DefaultDefiLlamaURL.
	BaseURL string
	// HTTPClient makes the requests. Default: a client whose Timeout of 30 s
	// bounds each attempt, body included (the /pools body is 10–20 MB).
	HTTPClient *http.Client
	// Retries is how many times a failed request is tried again: after a
	// network error, a timeout, a truncated body, a 5xx or a 429. Default
	// 3; negative means none.
	Retries int
	// Backoff is the wait before the first retry; it doubles for each
	// later one up to MaxBackoff, and each wait is drawn uniformly from its
	// upper half (jitter). Default 1 s.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts. Default 20 s.
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After (of a 429 or a 5xx) that is
	// waited out; a longer one ends the call at once, since waiting less
	// would only be refused again. Default 60 s.
	MaxRetryAfter time.Duration
	// MaxBodyBytes caps a response body; a longer one is an error. Default
	// 64 MiB.
	MaxBodyBytes int64
	// Wait waits d or until ctx ends, returning ctx's error in that case.
	// Default: a timer. Tests set it so that no test sleeps.
	Wait func(ctx context.Context, d time.Duration) error
	// Rand returns a uniform number in [0, 1) for the jitter. Default
	// math/rand/v2's Float64.
	Rand func() float64
	// Now is the clock, read only to turn a Retry-After date into a wait.
	// Default time.Now.
	Now func() time.Time
	// Logger receives the protocols skipped because of their data (no
	// pool, no APY, an impossible TVL). Default slog.Default().
	Logger *slog.Logger
}

func (c DefiLlamaConfig) withDefaults() DefiLlamaConfig {
	if c.BaseURL == "" {
		c.BaseURL = DefaultDefiLlamaURL
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.Retries == 0 {
		c.Retries = 3
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 20 * time.Second
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = 60 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.Wait == nil {
		c.Wait = obsqra.Sleep
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// DefiLlama is a Source that reads DefiLlama's yields API
// (https://yields.llama.fi): /pools for the current APY and TVL of every
// pool, /lendBorrow for lending pools' supply and borrows, /chart/{pool}
// for a pool's daily history.
//
// A protocol's pool is SourceIDs[DefiLlamaPoolID] when set; otherwise the
// pool of project SourceIDs[DefiLlamaProject] on the protocol's chain
// (compared without case: the API says "Starknet") with the highest TVL,
// ties going to the smaller pool id. That choice is kept for as long as the
// pool stays listed and the protocol's ids do not change, so that a
// protocol's series does not jump between pools whenever their TVLs cross.
// A protocol with neither id, or whose pool is not listed, is left out.
//
// A sample maps a pool's row exactly, from the numbers' decimal text and
// never through a float:
//   - ApyBps = apy × 100 rounded half away from zero (the API's apy is a
//     percentage). When apy is null, apyBase + apyReward with a null as 0;
//     when all three are null, or the APY is outside −100 % … 100 000 %,
//     the protocol is left out.
//   - TvlUsd = tvlUsd as a Decimal (an exponent is expanded, more than 18
//     decimals are rounded); nil when null. A negative TVL, or one above a
//     trillion USD, leaves the protocol out. For lending pools DefiLlama's
//     tvlUsd is supply minus borrows: the liquidity a lender can withdraw.
//   - UtilizationBps = totalBorrowUsd ÷ totalSupplyUsd × 10000 from
//     /lendBorrow, rounded and clamped to 0–10000; 0 for a pool /lendBorrow
//     does not list (a DEX pool) or whose supply is null or 0.
//   - ObservedAt = now truncated to the second for Poll (a /pools row has
//     no time of its own); the point's own time for History.
//
// A DefiLlama is safe for concurrent use.
type DefiLlama struct {
	cfg DefiLlamaConfig

	mu sync.Mutex
	// resolved is the pool chosen for each protocol named by project, by
	// protocol slug.
	resolved map[string]llamaResolved
}

// NewDefiLlama returns a DefiLlama source configured by cfg.
func NewDefiLlama(cfg DefiLlamaConfig) *DefiLlama {
	return &DefiLlama{cfg: cfg.withDefaults(), resolved: map[string]llamaResolved{}}
}

// Name returns obsqra.SourceDefiLlama.
func (d *DefiLlama) Name() string { return obsqra.SourceDefiLlama }

// Poll returns the current sample of each protocol whose pool DefiLlama
// lists, from one /pools and one /lendBorrow request whatever the number of
// protocols. last is not used. If either request fails (after its retries)
// the whole poll fails: the caller keeps its last samples and marks them
// stale, rather than ingesting lending protocols without their utilization.
func (d *DefiLlama) Poll(ctx context.Context, protocols []obsqra.Protocol, last map[int64]obsqra.MetricsSample, now time.Time) ([]obsqra.MetricsInput, error) {
	targets := d.targets(protocols)
	if len(targets) == 0 {
		return nil, nil
	}
	rows, err := d.pools(ctx, targets)
	if err != nil {
		return nil, err
	}
	type chosen struct {
		slug string
		row  llamaPoolRow
	}
	var picks []chosen
	for _, t := range targets {
		if row, ok := d.resolve(t, rows); ok {
			picks = append(picks, chosen{t.protocol.Slug, row})
		}
	}
	if len(picks) == 0 {
		return nil, nil
	}
	ids := make(map[string]bool, len(picks))
	for _, c := range picks {
		ids[c.row.Pool] = true
	}
	lend, err := d.lendBorrow(ctx, ids)
	if err != nil {
		return nil, err
	}

	observed := now.UTC().Truncate(time.Second)
	out := make([]obsqra.MetricsInput, 0, len(picks))
	for _, c := range picks {
		apy, tvl, err := llamaFigures(c.row.Apy, c.row.ApyBase, c.row.ApyReward, c.row.TvlUsd)
		var util int
		if err == nil {
			if lb, ok := lend[c.row.Pool]; ok {
				util, err = llamaUtilization(lb.TotalSupplyUsd, lb.TotalBorrowUsd)
			}
		}
		if err != nil {
			d.cfg.Logger.Warn("defillama: protocol skipped", "protocol", c.slug, "pool", c.row.Pool, "reason", err.Error())
			continue
		}
		out = append(out, obsqra.MetricsInput{
			Protocol:       c.slug,
			ObservedAt:     observed,
			ApyBps:         apy,
			TvlUsd:         tvl,
			UtilizationBps: util,
		})
	}
	return out, nil
}

// History returns, for each protocol whose pool DefiLlama knows, the last
// point of each of the days UTC days before now's day (today's point is
// not final yet), from /chart/{pool}, oldest first. Chart points carry no
// utilization: it is 0. A point without an APY or with an impossible TVL
// is skipped, so a day's sample is its last usable point. A protocol named
// by project needs one /pools request to find its pool, unless Poll or an
// earlier History already found it. Any failed request fails the call.
func (d *DefiLlama) History(ctx context.Context, protocols []obsqra.Protocol, now time.Time, days int) ([]obsqra.MetricsInput, error) {
	if days <= 0 {
		return nil, nil
	}
	targets := d.targets(protocols)
	poolOf := make(map[string]string, len(targets))
	var unresolved []llamaTarget
	for _, t := range targets {
		if t.spec.pool != "" {
			poolOf[t.protocol.Slug] = t.spec.pool
		} else if pool, ok := d.cached(t); ok {
			poolOf[t.protocol.Slug] = pool
		} else {
			unresolved = append(unresolved, t)
		}
	}
	if len(unresolved) > 0 {
		rows, err := d.pools(ctx, unresolved)
		if err != nil {
			return nil, err
		}
		for _, t := range unresolved {
			if row, ok := d.resolve(t, rows); ok {
				poolOf[t.protocol.Slug] = row.Pool
			}
		}
	}

	today := obsqra.DateOf(now)
	first := today - obsqra.Date(days)
	charts := map[string][]llamaChartPoint{} // by pool: two protocols may share one
	var out []obsqra.MetricsInput
	for _, t := range targets {
		slug := t.protocol.Slug
		pool, ok := poolOf[slug]
		if !ok {
			continue
		}
		points, ok := charts[pool]
		if !ok {
			var err error
			if points, err = d.chart(ctx, pool); err != nil {
				return nil, err
			}
			charts[pool] = points
		}
		// The API already sends one point per day, but its days are the
		// database's; ours are UTC, and its last point may be unusable.
		byDay := map[obsqra.Date]obsqra.MetricsInput{}
		for _, p := range points {
			day := obsqra.DateOf(p.at)
			if day < first || day >= today || !p.at.Before(now) {
				continue
			}
			apy, tvl, err := llamaFigures(p.Apy, p.ApyBase, p.ApyReward, p.TvlUsd)
			if err != nil {
				continue
			}
			if prev, ok := byDay[day]; ok && !p.at.After(prev.ObservedAt) {
				continue
			}
			byDay[day] = obsqra.MetricsInput{Protocol: slug, ObservedAt: p.at, ApyBps: apy, TvlUsd: tvl}
		}
		for _, s := range byDay {
			out = append(out, s)
		}
	}
	// Oldest first across protocols (and so within each), in the order the
	// protocols were given within one instant.
	order := make(map[string]int, len(targets))
	for i, t := range targets {
		order[t.protocol.Slug] = i
	}
	slices.SortFunc(out, func(a, b obsqra.MetricsInput) int {
		if c := a.ObservedAt.Compare(b.ObservedAt); c != 0 {
			return c
		}
		return cmp.Compare(order[a.Protocol], order[b.Protocol])
	})
	return out, nil
}

// llamaPoolRow is the part of a /pools row Obsqra reads. Numbers are kept
// as their JSON text, parsed only for the rows that are used.
type llamaPoolRow struct {
	Pool      string          `json:"pool"`
	Chain     string          `json:"chain"`
	Project   string          `json:"project"`
	Symbol    string          `json:"symbol"`
	TvlUsd    json.RawMessage `json:"tvlUsd"`
	Apy       json.RawMessage `json:"apy"`
	ApyBase   json.RawMessage `json:"apyBase"`
	ApyReward json.RawMessage `json:"apyReward"`
}

// llamaPools are the /pools rows of one response that targets may need.
type llamaPools struct {
	byID map[string]llamaPoolRow
}

// pools reads /pools and keeps the rows of the targets' pools, of their
// projects on their chains, and of the pools resolved for them earlier.
func (d *DefiLlama) pools(ctx context.Context, targets []llamaTarget) (*llamaPools, error) {
	ids := map[string]bool{}
	pairs := map[[2]string]bool{}
	for _, t := range targets {
		if t.spec.pool != "" {
			ids[t.spec.pool] = true
			continue
		}
		pairs[[2]string{t.spec.project, t.spec.chain}] = true
		if pool, ok := d.cached(t); ok {
			ids[pool] = true
		}
	}
	var rows *llamaPools
	err := d.get(ctx, "/pools", func(r io.Reader) error {
		rows = &llamaPools{byID: map[string]llamaPoolRow{}}
		return llamaDecode(r, false, func(dec *json.Decoder) error {
			var row llamaPoolRow
			if err := dec.Decode(&row); err != nil {
				return err
			}
			if row.Pool == "" {
				return nil
			}
			if ids[row.Pool] || pairs[[2]string{strings.ToLower(row.Project), strings.ToLower(row.Chain)}] {
				rows.byID[row.Pool] = row
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// llamaLendRow is the part of a /lendBorrow row Obsqra reads.
type llamaLendRow struct {
	Pool           string          `json:"pool"`
	TotalSupplyUsd json.RawMessage `json:"totalSupplyUsd"`
	TotalBorrowUsd json.RawMessage `json:"totalBorrowUsd"`
}

// lendBorrow reads /lendBorrow and keeps the rows of the pools in ids.
func (d *DefiLlama) lendBorrow(ctx context.Context, ids map[string]bool) (map[string]llamaLendRow, error) {
	var rows map[string]llamaLendRow
	err := d.get(ctx, "/lendBorrow", func(r io.Reader) error {
		rows = map[string]llamaLendRow{}
		// /lendBorrow is documented as a bare list; older deployments
		// wrapped it like /pools, and both are read.
		return llamaDecode(r, true, func(dec *json.Decoder) error {
			var row llamaLendRow
			if err := dec.Decode(&row); err != nil {
				return err
			}
			if ids[row.Pool] {
				rows[row.Pool] = row
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// llamaChartPoint is one point of /chart/{pool}.
type llamaChartPoint struct {
	Timestamp string          `json:"timestamp"`
	TvlUsd    json.RawMessage `json:"tvlUsd"`
	Apy       json.RawMessage `json:"apy"`
	ApyBase   json.RawMessage `json:"apyBase"`
	ApyReward json.RawMessage `json:"apyReward"`

	at time.Time
}

// chart reads /chart/{pool}.
func (d *DefiLlama) chart(ctx context.Context, pool string) ([]llamaChartPoint, error) {
	var points []llamaChartPoint
	err := d.get(ctx, "/chart/"+url.PathEscape(pool), func(r io.Reader) error {
		points = points[:0]
		return llamaDecode(r, false, func(dec *json.Decoder) error {
			var p llamaChartPoint
			if err := dec.Decode(&p); err != nil {
				return err
			}
			at, err := time.Parse(time.RFC3339Nano, p.Timestamp)
			if err != nil {
				return &llamaShapeError{fmt.Sprintf("a point's timestamp %s is not an RFC 3339 time", obsqra.QuoteInput(p.Timestamp))}
			}
			p.at = at.UTC().Truncate(time.Second)
			points = append(points, p)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return points, nil
}

// llamaFigures returns a row's APY in bps and its TVL (nil when null), or
// why the row cannot be a sample.
func llamaFigures(apy, apyBase, apyReward, tvlUsd json.RawMessage) (int, *obsqra.Decimal, error) {
	a, ok, err := llamaRat(apy)
	if err != nil {
		return 0, nil, fmt.Errorf("apy: %w", err)
	}
	if !ok {
		base, okBase, err := llamaRat(apyBase)
		if err != nil {
			return 0, nil, fmt.Errorf("apyBase: %w", err)
		}
		reward, okReward, err := llamaRat(apyReward)
		if err != nil {
			return 0, nil, fmt.Errorf("apyReward: %w", err)
		}
		if !okBase && !okReward {
			return 0, nil, errors.New("apy, apyBase and apyReward are all null")
		}
		a = new(big.Rat)
		if okBase {
			a.Add(a, base)
		}
		if okReward {
			a.Add(a, reward)
		}
	}
	if a.Cmp(llamaMinAPY) < 0 || a.Cmp(llamaMaxAPY) > 0 {
		return 0, nil, fmt.Errorf("apy %s %% is outside %s %% … %s %%", a.FloatString(4), llamaMinAPY.RatString(), llamaMaxAPY.RatString())
	}
	bps := llamaRound(new(big.Rat).Mul(a, big.NewRat(100, 1)))

	tvl, ok, err := llamaRat(tvlUsd)
	if err != nil {
		return 0, nil, fmt.Errorf("tvlUsd: %w", err)
	}
	if !ok {
		return int(bps), nil, nil
	}
	if tvl.Sign() < 0 || tvl.Cmp(llamaMaxTVL) > 0 {
		return 0, nil, fmt.Errorf("tvlUsd %s is outside 0 … %s", tvl.FloatString(2), llamaMaxTVL.RatString())
	}
	// The text as sent when it is plain; an exponent or more than 18
	// decimals go through the exact rational.
	dec, err := obsqra.ParseDecimal(string(bytes.TrimSpace(tvlUsd)))
	if err != nil {
		if dec, err = obsqra.ParseDecimal(tvl.FloatString(obsqra.MaxDecimalFraction)); err != nil {
			return 0, nil, fmt.Errorf("tvlUsd: %w", err)
		}
	}
	return int(bps), &dec, nil
}

// llamaUtilization returns borrows ÷ supply in bps, rounded and clamped to
// 0–10000; 0 when the supply is null or not positive.
func llamaUtilization(supplyUsd, borrowUsd json.RawMessage) (int, error) {
	supply, ok, err := llamaRat(supplyUsd)
	if err != nil {
		return 0, fmt.Errorf("totalSupplyUsd: %w", err)
	}
	if !ok || supply.Sign() <= 0 {
		return 0, nil
	}
	borrow, ok, err := llamaRat(borrowUsd)
	if err != nil {
		return 0, fmt.Errorf("totalBorrowUsd: %w", err)
	}
	if !ok || borrow.Sign() <= 0 {
		return 0, nil
	}
	u := new(big.Rat).Quo(borrow, supply)
	if u.Cmp(big.NewRat(1, 1)) >= 0 {
		return 10000, nil
	}
	return int(llamaRound(u.Mul(u, big.NewRat(10000, 1)))), nil
}

// llamaRat returns a JSON number exactly; ok is false for null or a missing
// field.
func llamaRat(raw json.RawMessage) (r *big.Rat, ok bool, err error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s == "null" {
		return nil, false, nil
	}
	if c := s[0]; c != '-' && (c < '0' || c > '9') {
		return nil, false, fmt.Errorf("%s is not a number", obsqra.Clip(s, 64))
	}
	// big.Rat would expand 1e999999999 into a billion digits.
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || exp < -400 || exp > 400 {
			return nil, false, fmt.Errorf("%s is out of range", obsqra.Clip(s, 64))
		}
	}
	r, valid := new(big.Rat).SetString(s)
	if !valid {
		return nil, false, fmt.Errorf("%s is not a number", obsqra.Clip(s, 64))
	}
	return r, true, nil
}

// llamaRound rounds r to the nearest integer, halves away from zero (as
// math.Round does). r must fit an int64.
func llamaRound(r *big.Rat) int64 {
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if m.Abs(m).Lsh(m, 1).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q.Int64()
}

// llamaDecode reads a yields API body: {"status":"success","data":[…]}, or
// when bare is true also a plain […], calling each once per element of the
// list with the decoder positioned on it. An element of the wrong type
// (for example a row whose chain is a number) is skipped: one odd row of
// another chain must not stop the feed.
func llamaDecode(r io.Reader, bare bool, each func(*json.Decoder) error) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	tok, err := dec.Token()
	if err == io.EOF {
		return fmt.Errorf("empty body: %w", io.ErrUnexpectedEOF)
	} else if err != nil {
		return err
	}
	switch tok {
	case json.Delim('['):
		if !bare {
			return &llamaShapeError{"the body is a list, not an object with status and data"}
		}
		return llamaDecodeList(dec, each)
	case json.Delim('{'):
	default:
		return &llamaShapeError{"the body is not a JSON object"}
	}

	var status, message string
	var sawStatus, sawData, dataIsList bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		switch key {
		case "status", "message":
			var v any
			if err := dec.Decode(&v); err != nil {
				return err
			}
			s, ok := v.(string)
			if !ok {
				s = fmt.Sprint(v)
			}
			if key == "status" {
				status, sawStatus = s, true
			} else {
				message = s
			}
		case "data":
			sawData = true
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			if tok == json.Delim('[') {
				dataIsList = true
				if err := llamaDecodeList(dec, each); err != nil {
					return err
				}
			} else if err := llamaSkip(dec, tok); err != nil {
				return err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	switch {
	case !sawStatus:
		return &llamaShapeError{"the body has no status"}
	case status != "success":
		msg := fmt.Sprintf("status is %s, not \"success\"", obsqra.QuoteInput(status))
		if message != "" {
			msg += ": " + obsqra.QuoteInput(message)
		}
		return &llamaShapeError{msg}
	case !sawData:
		return &llamaShapeError{"the body has no data"}
	case !dataIsList:
		return &llamaShapeError{"data is not a list"}
	}
	return nil
}

// llamaDecodeList calls each for every element up to the list's closing
// bracket, skipping elements of the wrong type.
func llamaDecodeList(dec *json.Decoder, each func(*json.Decoder) error) error {
	for dec.More() {
		var typeErr *json.UnmarshalTypeError
		if err := each(dec); errors.As(err, &typeErr) {
			// Decode reads the whole element before it fails on a
			// type, so the stream is still in step.
			continue
		} else if err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

// llamaSkip skips the rest of a value whose first token was tok.
func llamaSkip(dec *json.Decoder, tok json.Token) error {
	depth := 0
	for {
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, err = dec.Token(); err != nil {
			return err
		}
	}
}

// llamaShapeError is a body that is not what the API documents.
type llamaShapeError struct{ msg string }

func (e *llamaShapeError) Error() string { return "unexpected response: " + e.msg }
