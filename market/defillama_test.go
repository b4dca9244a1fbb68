package market

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/obsqratest"
)

// Pools of testdata/defillama.
const (
	poolZkUSDC   = "a1000000-0000-4000-8000-000000000001" // zklend's largest on Starknet, lending
	poolZkETH    = "a1000000-0000-4000-8000-000000000002" // zklend's second on Starknet
	poolNostra   = "b1000000-0000-4000-8000-000000000001" // apy null: apyBase + apyReward
	poolEkubo    = "c1000000-0000-4000-8000-000000000001" // a DEX pool
	poolVesuUSDC = "e1000000-0000-4000-8000-000000000002" // vesu's smaller pool, borrows above supply
	poolUnlisted = "99999999-0000-4000-8000-000000000000"
)

// llamaNow is the fixtures' "now": the chart of poolZkUSDC has points on
// both sides of it.
var llamaNow = time.Date(2024, 1, 10, 12, 34, 56, 789, time.UTC)

// fakeLlama is a DefiLlama yields API on httptest: it serves the fixtures
// of testdata/defillama and counts the requests of each path.
type fakeLlama struct {
	srv *httptest.Server

	mu   sync.Mutex
	hits map[string]int
	// answer, when set, may answer a request itself (returning true); n is
	// the number of the request on its path, 1 for the first.
	answer func(w http.ResponseWriter, r *http.Request, n int) bool
	// files replaces fixture files by name, e.g. "pools.json".
	files map[string][]byte
}

func newFakeLlama(t *testing.T) *fakeLlama {
	t.Helper()
	f := &fakeLlama{hits: map[string]int{}, files: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pools", func(w http.ResponseWriter, r *http.Request) { f.serve(t, w, r, "pools.json") })
	mux.HandleFunc("GET /lendBorrow", func(w http.ResponseWriter, r *http.Request) { f.serve(t, w, r, "lendBorrow.json") })
	mux.HandleFunc("GET /chart/{pool}", func(w http.ResponseWriter, r *http.Request) {
		f.serve(t, w, r, "chart_"+r.PathValue("pool")+".json")
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLlama) serve(t *testing.T, w http.ResponseWriter, r *http.Request, file string) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	n, answer, body := f.hits[r.URL.Path], f.answer, f.files[file]
	f.mu.Unlock()
	if answer != nil && answer(w, r, n) {
		return
	}
	if body == nil {
		b, err := os.ReadFile(filepath.Join("testdata", "defillama", file))
		if errors.Is(err, os.ErrNotExist) {
			http.Error(w, `"invalid configID!"`, http.StatusNotFound)
			return
		} else if err != nil {
			t.Errorf("fixture: %v", err)
			return
		}
		body = b
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

func (f *fakeLlama) setAnswer(a func(w http.ResponseWriter, r *http.Request, n int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

func (f *fakeLlama) setFile(name, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[name] = []byte(body)
}

func (f *fakeLlama) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

// llamaBundle holds what a DefiLlama under test works with.
type llamaBundle struct {
	fake *fakeLlama

	mu    sync.Mutex
	waits []time.Duration
	log   obsqratest.Buffer
}

func (b *llamaBundle) waited() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.waits...)
}

func (b *llamaBundle) logged() string { return b.log.String() }

// setupLlama returns a DefiLlama talking to a fake API. Its waits are
// recorded and return at once (or with the context's error); its jitter is
// 0, so each wait is the lower half-point of its backoff.
func setupLlama(t *testing.T, configure ...func(*DefiLlamaConfig)) (*DefiLlama, *llamaBundle) {
	t.Helper()
	b := &llamaBundle{fake: newFakeLlama(t)}
	cfg := DefiLlamaConfig{
		BaseURL: b.fake.srv.URL,
		Wait: func(ctx context.Context, d time.Duration) error {
			b.mu.Lock()
			b.waits = append(b.waits, d)
			b.mu.Unlock()
			return ctx.Err()
		},
		Rand:   func() float64 { return 0 },
		Now:    func() time.Time { return llamaNow },
		Logger: slog.New(slog.NewTextHandler(&b.log, nil)),
	}
	for _, c := range configure {
		c(&cfg)
	}
	return NewDefiLlama(cfg), b
}

func llamaProtocol(slug, chain string, ids ...string) obsqra.Protocol {
	p := obsqra.Protocol{Slug: slug, Name: slug, Chain: chain, SourceIDs: map[string]string{}}
	for i := 0; i+1 < len(ids); i += 2 {
		p.SourceIDs[ids[i]] = ids[i+1]
	}
	return p
}

func usd(s string) *obsqra.Decimal {
	d := obsqra.MustDecimal(s)
	return &d
}

func TestDefiLlamaName(t *testing.T) {
	t.Parallel()
	if got := NewDefiLlama(DefiLlamaConfig{}).Name(); got != obsqra.SourceDefiLlama {
		t.Errorf("Name() = %q, want %q", got, obsqra.SourceDefiLlama)
	}
	var _ Source = (*DefiLlama)(nil)
}

func TestDefiLlamaPoll(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	protocols := []obsqra.Protocol{
		// The highest TVL of the project on Starknet; zklend's larger pool on
		// Ethereum and a pool-less row do not count.
		llamaProtocol("zklend", "starknet", DefiLlamaProject, "zklend"),
		llamaProtocol("nobody", "starknet"),
		// apy null: 1.5 + 0.75; the other pool's TVL is null and ranks last.
		llamaProtocol("nostra", "Starknet", DefiLlamaProject, "nostra-money-market"),
		// A DEX pool: no /lendBorrow row.
		llamaProtocol("ekubo", "STARKNET", DefiLlamaProject, "ekubo"),
		// All three APYs null.
		llamaProtocol("jediswap", "starknet", DefiLlamaProject, "jediswap"),
		// A configured pool wins over the project's larger one.
		llamaProtocol("vesu", "starknet", DefiLlamaPoolID, poolVesuUSDC, DefiLlamaProject, "vesu"),
		// A negative TVL.
		llamaProtocol("broken", "starknet", DefiLlamaProject, "brokenlend"),
		llamaProtocol("ghost", "starknet", DefiLlamaPoolID, poolUnlisted),
		llamaProtocol("elsewhere", "starknet", DefiLlamaProject, "aave-v3"),
		// No chain to match the project on.
		llamaProtocol("chainless", "", DefiLlamaProject, "zklend"),
	}
	got, err := d.Poll(context.Background(), protocols, nil, llamaNow)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	at := time.Date(2024, 1, 10, 12, 34, 56, 0, time.UTC)
	want := []obsqra.MetricsInput{
		// 3.255 % is 325.5 bps, rounded up (a float would say 325.49…);
		// 1 500 000 ÷ 4 000 000.123456789 = 37.4999… %.
		{Protocol: "zklend", ObservedAt: at, ApyBps: 326, TvlUsd: usd("2500000.123456789"), UtilizationBps: 3750},
		// 2 ÷ 3 = 66.67 %; 1.25e7 written out.
		{Protocol: "nostra", ObservedAt: at, ApyBps: 225, TvlUsd: usd("12500000"), UtilizationBps: 6667},
		{Protocol: "ekubo", ObservedAt: at, ApyBps: 1235, TvlUsd: usd("800000.5"), UtilizationBps: 0},
		// Borrows above supply clamp to 100 %.
		{Protocol: "vesu", ObservedAt: at, ApyBps: 650, TvlUsd: usd("100"), UtilizationBps: 10000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Poll() =\n%+v\nwant\n%+v", got, want)
	}
	if n := b.fake.count("/pools"); n != 1 {
		t.Errorf("/pools was requested %d times, want 1", n)
	}
	if n := b.fake.count("/lendBorrow"); n != 1 {
		t.Errorf("/lendBorrow was requested %d times, want 1", n)
	}
	log := b.logged()
	for _, reason := range []string{
		`protocol=jediswap pool=d1000000-0000-4000-8000-000000000001 reason="apy, apyBase and apyReward are all null"`,
		`protocol=broken pool=90000000-0000-4000-8000-000000000001 reason="tvlUsd -5.00 is outside 0 … 1000000000000"`,
		`protocol=ghost pool=` + poolUnlisted + ` reason="the pool is not listed by /pools"`,
		`protocol=elsewhere project=aave-v3 chain=starknet reason="no pool of the project on the chain is listed by /pools"`,
	} {
		if !strings.Contains(log, reason) {
			t.Errorf("the log does not say %s; it is:\n%s", reason, log)
		}
	}
	if strings.Contains(log, "nobody") || strings.Contains(log, "chainless") {
		t.Errorf("protocols without a DefiLlama pool are logged, want them left out quietly:\n%s", log)
	}
}

func TestDefiLlamaPollNothingToAsk(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	got, err := d.Poll(context.Background(), []obsqra.Protocol{llamaProtocol("nobody", "starknet")}, nil, llamaNow)
	if err != nil || got != nil {
		t.Errorf("Poll() = %v, %v; want nil, nil", got, err)
	}
	if n := b.fake.count("/pools"); n != 0 {
		t.Errorf("/pools was requested %d times, want 0", n)
	}
}

// A project's pool, once chosen, is kept while it is listed, so the
// protocol's series does not hop between pools as their TVLs cross.
func TestDefiLlamaPollKeepsItsPool(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	zk := []obsqra.Protocol{llamaProtocol("zklend", "starknet", DefiLlamaProject, "zklend")}
	poll := func(wantApy int) {
		t.Helper()
		got, err := d.Poll(context.Background(), zk, nil, llamaNow)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if len(got) != 1 || got[0].ApyBps != wantApy {
			t.Fatalf("Poll() = %+v, want zklend at %d bps", got, wantApy)
		}
	}
	poll(326)

	// The ETH pool now holds more, yet the USDC pool stays.
	b.fake.setFile("pools.json", `{"status":"success","data":[
		{"chain":"Starknet","project":"zklend","symbol":"USDC","tvlUsd":10,"apy":3.255,"pool":"`+poolZkUSDC+`"},
		{"chain":"Starknet","project":"zklend","symbol":"ETH","tvlUsd":5000000,"apy":1.3,"pool":"`+poolZkETH+`"}]}`)
	poll(326)

	// The USDC pool is gone: the project's largest is chosen again.
	b.fake.setFile("pools.json", `{"status":"success","data":[
		{"chain":"Starknet","project":"zklend","symbol":"ETH","tvlUsd":5000000,"apy":1.3,"pool":"`+poolZkETH+`"}]}`)
	poll(130)
}

func TestDefiLlamaLendBorrowWrapped(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	b.fake.setFile("lendBorrow.json", `{"status":"success","data":[{"pool":"`+poolZkUSDC+`","totalSupplyUsd":8,"totalBorrowUsd":1}]}`)
	got, err := d.Poll(context.Background(), []obsqra.Protocol{llamaProtocol("zklend", "starknet", DefiLlamaProject, "zklend")}, nil, llamaNow)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if len(got) != 1 || got[0].UtilizationBps != 1250 {
		t.Errorf("Poll() = %+v, want zklend at 1250 bps of utilization", got)
	}
}

// Without its utilization a lending protocol's sample would be wrong, so
// a failed /lendBorrow fails the poll.
func TestDefiLlamaPollLendBorrowDown(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	b.fake.setAnswer(func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path != "/lendBorrow" {
			return false
		}
		http.Error(w, "gone", http.StatusGone)
		return true
	})
	got, err := d.Poll(context.Background(), []obsqra.Protocol{llamaProtocol("ekubo", "starknet", DefiLlamaProject, "ekubo")}, nil, llamaNow)
	if err == nil || !strings.Contains(err.Error(), "defillama: GET /lendBorrow: status 410 Gone") {
		t.Errorf("Poll() = %v, %v; want the /lendBorrow failure", got, err)
	}
}

func TestDefiLlamaHistory(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	protocols := []obsqra.Protocol{
		llamaProtocol("zklend", "starknet", DefiLlamaProject, "zklend"),
		llamaProtocol("nobody", "starknet"),
		llamaProtocol("vesu", "starknet", DefiLlamaPoolID, poolVesuUSDC),
		// Shares vesu's pool: its chart is read once.
		llamaProtocol("vesu-too", "starknet", DefiLlamaPoolID, poolVesuUSDC),
	}
	got, err := d.History(context.Background(), protocols, llamaNow, 5)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	at := func(day, h, m, s int) time.Time { return time.Date(2024, 1, day, h, m, s, 0, time.UTC) }
	// Days 5–9 January: the 3rd is too old, the 10th is today; the 8th has
	// no zklend point; the 7th's last point has no APY, so its 22:00 point
	// stands; the 6th's 05:00 point comes after its 23:00 point in the list.
	want := []obsqra.MetricsInput{
		{Protocol: "zklend", ObservedAt: at(5, 23, 1, 21), ApyBps: 256, TvlUsd: usd("101.5")},
		{Protocol: "zklend", ObservedAt: at(6, 23, 0, 0), ApyBps: 300},
		{Protocol: "zklend", ObservedAt: at(7, 22, 0, 0), ApyBps: 400, TvlUsd: usd("7")},
		{Protocol: "vesu", ObservedAt: at(8, 0, 0, 0), ApyBps: 650, TvlUsd: usd("100")},
		{Protocol: "vesu-too", ObservedAt: at(8, 0, 0, 0), ApyBps: 650, TvlUsd: usd("100")},
		{Protocol: "vesu", ObservedAt: at(9, 12, 0, 0), ApyBps: 600, TvlUsd: usd("110")},
		{Protocol: "vesu-too", ObservedAt: at(9, 12, 0, 0), ApyBps: 600, TvlUsd: usd("110")},
		{Protocol: "zklend", ObservedAt: at(9, 23, 59, 59), ApyBps: 150, TvlUsd: usd("1500")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("History() =\n%+v\nwant\n%+v", got, want)
	}
	for path, want := range map[string]int{
		"/pools": 1, "/lendBorrow": 0, "/chart/" + poolZkUSDC: 1, "/chart/" + poolVesuUSDC: 1,
	} {
		if n := b.fake.count(path); n != want {
			t.Errorf("%s was requested %d times, want %d", path, n, want)
		}
	}

	// zklend's pool is known now: no second /pools.
	if _, err := d.History(context.Background(), protocols[:1], llamaNow, 1); err != nil {
		t.Fatalf("History again: %v", err)
	}
	if n := b.fake.count("/pools"); n != 1 {
		t.Errorf("/pools was requested %d times after a second History, want 1", n)
	}
}

func TestDefiLlamaHistoryAfterPoll(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	zk := []obsqra.Protocol{llamaProtocol("zklend", "starknet", DefiLlamaProject, "zklend")}
	if _, err := d.Poll(context.Background(), zk, nil, llamaNow); err != nil {
		t.Fatalf("Poll: %v", err)
	}
	got, err := d.History(context.Background(), zk, llamaNow, 1)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	want := []obsqra.MetricsInput{{Protocol: "zklend", ObservedAt: time.Date(2024, 1, 9, 23, 59, 59, 0, time.UTC), ApyBps: 150, TvlUsd: usd("1500")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("History() = %+v, want %+v", got, want)
	}
	if n := b.fake.count("/pools"); n != 1 {
		t.Errorf("/pools was requested %d times, want 1 (by Poll)", n)
	}
	// A project that changes is looked up again.
	zk[0].SourceIDs[DefiLlamaProject] = "vesu"
	if _, err := d.History(context.Background(), zk, llamaNow, 1); err == nil || !strings.Contains(err.Error(), "defillama: GET /chart/e1000000-0000-4000-8000-000000000001: status 404 Not Found") {
		t.Errorf("History() after the project changed: %v, want vesu's largest pool's chart (which the fake lacks)", err)
	}
	if n := b.fake.count("/pools"); n != 2 {
		t.Errorf("/pools was requested %d times, want 2", n)
	}
}

func TestDefiLlamaHistoryNoDays(t *testing.T) {
	t.Parallel()
	d, b := setupLlama(t)
	got, err := d.History(context.Background(), []obsqra.Protocol{llamaProtocol("vesu", "starknet", DefiLlamaPoolID, poolVesuUSDC)}, llamaNow, 0)
	if err != nil || got != nil {
		t.Errorf("History(days 0) = %v, %v; want nil, nil", got, err)
	}
	if n := b.fake.count("/chart/" + poolVesuUSDC); n != 0 {
		t.Errorf("/chart was requested %d times, want 0", n)
	}
}

func TestDefiLlamaFigures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		apy, base, reward, tvl string // JSON text; "" is a missing field
		wantBps                int
		wantTvl                *obsqra.Decimal
		wantErr                string
	}{
		{name: "apy wins", apy: "3.25", base: "1", reward: "1", tvl: "10", wantBps: 325, wantTvl: usd("10")},
		{name: "half rounds up", apy: "0.005", tvl: "1", wantBps: 1, wantTvl: usd("1")},
		{name: "below half rounds down", apy: "0.00499999", tvl: "1", wantBps: 0, wantTvl: usd("1")},
		{name: "negative half rounds away from zero", apy: "-1.235", tvl: "1", wantBps: -124, wantTvl: usd("1")},
		{name: "float-hostile", apy: "1.005", tvl: "1", wantBps: 101, wantTvl: usd("1")}, // 1.005×100 = 100.49999… as floats
		{name: "exponent apy", apy: "1.5e1", tvl: "1", wantBps: 1500, wantTvl: usd("1")},
		{name: "null apy sums", apy: "null", base: "2.1", reward: "0.35", wantBps: 245},
		{name: "missing apy, null reward", base: "2.1", reward: "null", wantBps: 210},
		{name: "only reward", apy: "null", base: "null", reward: "0.04", wantBps: 4},
		{name: "zero apy", apy: "0", tvl: "0", wantBps: 0, wantTvl: usd("0")},
		{name: "tvl exponent", apy: "1", tvl: "1.2345E+3", wantBps: 100, wantTvl: usd("1234.5")},
		{name: "tvl tiny exponent", apy: "1", tvl: "1.5e-7", wantBps: 100, wantTvl: usd("0.00000015")},
		{name: "tvl beyond 18 decimals rounds", apy: "1", tvl: "0.0000000000000000015", wantBps: 100, wantTvl: usd("0.000000000000000002")},
		{name: "tvl negative zero", apy: "1", tvl: "-0", wantBps: 100, wantTvl: usd("0")},
		{name: "tvl at the cap", apy: "1", tvl: "1000000000000", wantBps: 100, wantTvl: usd("1000000000000")},
		{name: "all null", apy: "null", base: "null", reward: "null", tvl: "1", wantErr: "apy, apyBase and apyReward are all null"},
		{name: "all missing", tvl: "1", wantErr: "apy, apyBase and apyReward are all null"},
		{name: "apy too high", apy: "100000.01", tvl: "1", wantErr: "apy 100000.0100 % is outside -100 % … 100000 %"},
		{name: "apy too low", apy: "-100.5", tvl: "1", wantErr: "is outside"},
		{name: "apy a string", apy: `"3.2"`, tvl: "1", wantErr: `apy: "3.2" is not a number`},
		{name: "apy huge exponent", apy: "1e999999999", tvl: "1", wantErr: "apy: 1e999999999 is out of range"},
		{name: "tvl negative", apy: "1", tvl: "-0.01", wantErr: "tvlUsd -0.01 is outside"},
		{name: "tvl absurd", apy: "1", tvl: "1000000000000.01", wantErr: "tvlUsd 1000000000000.01 is outside"},
		{name: "tvl a bool", apy: "1", tvl: "true", wantErr: "tvlUsd: true is not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bps, tvl, err := llamaFigures(json.RawMessage(tt.apy), json.RawMessage(tt.base), json.RawMessage(tt.reward), json.RawMessage(tt.tvl))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("llamaFigures(%s, %s, %s, %s) error = %v, want %q", tt.apy, tt.base, tt.reward, tt.tvl, err, tt.wantErr)
				}
				return
			}
			if err != nil || bps != tt.wantBps || !reflect.DeepEqual(tvl, tt.wantTvl) {
				t.Errorf("llamaFigures(%s, %s, %s, %s) = %d, %v, %v; want %d, %v", tt.apy, tt.base, tt.reward, tt.tvl, bps, tvl, err, tt.wantBps, tt.wantTvl)
			}
		})
	}
}

func TestDefiLlamaUtilization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		supply, borrow string
		want           int
		wantErr        string
	}{
		{"100", "25", 2500, ""},
		{"3", "2", 6667, ""},
		{"3", "1", 3333, ""},
		{"20000", "1", 1, ""}, // 0.5 bps rounds up
		{"20001", "1", 0, ""}, // just under
		{"100", "100", 10000, ""},
		{"100", "250", 10000, ""},
		{"100", "-5", 0, ""},
		{"100", "null", 0, ""},
		{"100", "", 0, ""},
		{"0", "5", 0, ""},
		{"-1", "5", 0, ""},
		{"null", "5", 0, ""},
		{"1e3", "2.5E2", 2500, ""},
		{`"100"`, "5", 0, "totalSupplyUsd"},
		{"100", "{}", 0, "totalBorrowUsd"},
	}
	for _, tt := range tests {
		got, err := llamaUtilization(json.RawMessage(tt.supply), json.RawMessage(tt.borrow))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("llamaUtilization(%s, %s) error = %v, want %q", tt.supply, tt.borrow, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("llamaUtilization(%s, %s) = %d, %v; want %d", tt.supply, tt.borrow, got, err, tt.want)
		}
	}
}

func TestDefiLlamaBackoff(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rand float64
		want []time.Duration // attempts 1…
	}{
		{0, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}},
		{0.5, []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 12 * time.Second, 15 * time.Second, 15 * time.Second}},
	} {
		d := NewDefiLlama(DefiLlamaConfig{Rand: func() float64 { return tt.rand }})
		for i, want := range tt.want {
			if got := d.backoff(i + 1); got != want {
				t.Errorf("backoff(%d) with rand %v = %s, want %s", i+1, tt.rand, got, want)
			}
		}
		if got := d.backoff(1000); got != tt.want[len(tt.want)-1] {
			t.Errorf("backoff(1000) with rand %v = %s, want the cap", tt.rand, got)
		}
	}
}

func TestDefiLlamaRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 1, 10, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"Wed, 10 Jan 2024 12:00:30 GMT", 30 * time.Second},
		{"Wed, 10 Jan 2024 11:00:00 GMT", 0},
		{"99999999999999", (1 << 32) * time.Second},
	} {
		if got := llamaRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("llamaRetryAfter(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

// TestDefiLlamaFeedDown polls through a feed that fails in each way the
// real one can, counting the requests the fake server sees.
func TestDefiLlamaFeedDown(t *testing.T) {
	t.Parallel()
	status := func(code int, header ...string) func(w http.ResponseWriter, r *http.Request, n int) bool {
		return func(w http.ResponseWriter, r *http.Request, n int) bool {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			http.Error(w, "upstream says no", code)
			return true
		}
	}
	body := func(s string) func(w http.ResponseWriter, r *http.Request, n int) bool {
		return func(w http.ResponseWriter, r *http.Request, n int) bool {
			w.Write([]byte(s))
			return true
		}
	}
	// failing fails the first n requests to /pools with fail.
	failing := func(n int, fail func(w http.ResponseWriter, r *http.Request, n int) bool) func(w http.ResponseWriter, r *http.Request, n int) bool {
		return func(w http.ResponseWriter, r *http.Request, i int) bool {
			return r.URL.Path == "/pools" && i <= n && fail(w, r, i)
		}
	}
	always := func(fail func(w http.ResponseWriter, r *http.Request, n int) bool) func(w http.ResponseWriter, r *http.Request, n int) bool {
		return failing(1<<30, fail)
	}
	hangUp := func(w http.ResponseWriter, r *http.Request, n int) bool {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return true
		}
		conn.Close()
		return true
	}
	cutShort := func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"status":"success","data":[{"pool":`))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return true
		}
		conn.Close()
		return true
	}
	hang := func(w http.ResponseWriter, r *http.Request, n int) bool {
		<-r.Context().Done() // until the client gives up
		return true
	}
	ms := time.Millisecond

	tests := []struct {
		name      string
		configure func(*DefiLlamaConfig)
		answer    func(w http.ResponseWriter, r *http.Request, n int) bool
		wantHits  int
		wantWaits []time.Duration
		wantErr   string // "" for success
		check     func(t *testing.T, err error)
	}{
		{
			name:      "500 twice then success",
			answer:    failing(2, status(http.StatusInternalServerError)),
			wantHits:  3,
			wantWaits: []time.Duration{500 * ms, 1000 * ms},
		},
		{
			name:      "503 every time",
			answer:    always(status(http.StatusServiceUnavailable)),
			wantHits:  4,
			wantWaits: []time.Duration{500 * ms, 1000 * ms, 2000 * ms},
			wantErr:   `defillama: GET /pools: failed 4 times, the last: status 503 Service Unavailable: "upstream says no"`,
			check: func(t *testing.T, err error) {
				var se *llamaStatusError
				if !errors.As(err, &se) || se.code != http.StatusServiceUnavailable {
					t.Errorf("errors.As(%v, *llamaStatusError) = %v, want status 503", err, se)
				}
			},
		},
		{
			name:      "retries configured away",
			configure: func(c *DefiLlamaConfig) { c.Retries = -1 },
			answer:    always(status(http.StatusBadGateway)),
			wantHits:  1,
			wantErr:   "defillama: GET /pools: status 502 Bad Gateway",
		},
		{
			name:      "429 with Retry-After in seconds",
			answer:    failing(1, status(http.StatusTooManyRequests, "Retry-After", "7")),
			wantHits:  2,
			wantWaits: []time.Duration{7 * time.Second},
		},
		{
			name: "429 with Retry-After as a date",
			configure: func(c *DefiLlamaConfig) {
				c.Now = func() time.Time { return time.Date(2024, 1, 10, 12, 0, 0, 0, time.UTC) }
			},
			answer:    failing(1, status(http.StatusTooManyRequests, "Retry-After", "Wed, 10 Jan 2024 12:00:12 GMT")),
			wantHits:  2,
			wantWaits: []time.Duration{12 * time.Second},
		},
		{
			name:      "429 every time",
			answer:    always(status(http.StatusTooManyRequests, "Retry-After", "3")),
			wantHits:  4,
			wantWaits: []time.Duration{3 * time.Second, 3 * time.Second, 3 * time.Second},
			wantErr:   "defillama: GET /pools: failed 4 times, the last: status 429 Too Many Requests, retry after 3s",
		},
		{
			name:     "429 with a Retry-After beyond the cap",
			answer:   always(status(http.StatusTooManyRequests, "Retry-After", "3600")),
			wantHits: 1,
			wantErr:  "defillama: GET /pools: not retried, the wait asked for is longer than 1m0s: status 429 Too Many Requests, retry after 1h0m0s",
		},
		{
			name:     "404 is not retried",
			answer:   always(status(http.StatusNotFound)),
			wantHits: 1,
			wantErr:  `defillama: GET /pools: status 404 Not Found: "upstream says no"`,
		},
		{
			name:     "400 is not retried",
			answer:   always(status(http.StatusBadRequest)),
			wantHits: 1,
			wantErr:  "defillama: GET /pools: status 400 Bad Request",
		},
		{
			name:      "connection dropped once",
			answer:    failing(1, hangUp),
			wantHits:  2,
			wantWaits: []time.Duration{500 * ms},
		},
		{
			name:      "connection dropped every time",
			answer:    always(hangUp),
			wantHits:  4,
			wantWaits: []time.Duration{500 * ms, 1000 * ms, 2000 * ms},
			wantErr:   "defillama: GET /pools: failed 4 times, the last: Get ",
		},
		{
			name:      "body cut short once",
			answer:    failing(1, cutShort),
			wantHits:  2,
			wantWaits: []time.Duration{500 * ms},
		},
		{
			name: "timeout",
			configure: func(c *DefiLlamaConfig) {
				c.HTTPClient = &http.Client{Timeout: 50 * ms}
				c.Retries = 1
			},
			answer:    always(hang),
			wantHits:  2,
			wantWaits: []time.Duration{500 * ms},
			wantErr:   "defillama: GET /pools: failed 2 times, the last: Get ",
			check: func(t *testing.T, err error) {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("Poll() error = %v, want a timeout", err)
				}
			},
		},
		{
			name:     "malformed JSON",
			answer:   always(body(`{"status":"success","data":[{"pool":}]}`)),
			wantHits: 1,
			wantErr:  "defillama: GET /pools: invalid character '}' looking for beginning of value",
		},
		{
			name:     "an HTML page",
			answer:   always(body("<html><body>Just a moment…</body></html>")),
			wantHits: 1,
			wantErr:  "defillama: GET /pools: invalid character '<' looking for beginning of value",
		},
		{
			name:     "status error",
			answer:   always(body(`{"status":"error","message":"database unavailable"}`)),
			wantHits: 1,
			wantErr:  `defillama: GET /pools: unexpected response: status is "error", not "success": "database unavailable"`,
		},
		{
			name:     "status after a data list",
			answer:   always(body(`{"data":[],"status":"fail"}`)),
			wantHits: 1,
			wantErr:  `unexpected response: status is "fail", not "success"`,
		},
		{
			name:     "no status",
			answer:   always(body(`{"data":[]}`)),
			wantHits: 1,
			wantErr:  "unexpected response: the body has no status",
		},
		{
			name:     "no data",
			answer:   always(body(`{"status":"success"}`)),
			wantHits: 1,
			wantErr:  "unexpected response: the body has no data",
		},
		{
			name:     "data not a list",
			answer:   always(body(`{"status":"success","data":{"pools":[1,2,{"a":[]}]}}`)),
			wantHits: 1,
			wantErr:  "unexpected response: data is not a list",
		},
		{
			name:     "a bare list",
			answer:   always(body(`[]`)),
			wantHits: 1,
			wantErr:  "unexpected response: the body is a list, not an object with status and data",
		},
		{
			name:     "a string",
			answer:   always(body(`"invalid configID!"`)),
			wantHits: 1,
			wantErr:  "unexpected response: the body is not a JSON object",
		},
		{
			name:      "an empty body",
			answer:    failing(1, body("")),
			wantHits:  2,
			wantWaits: []time.Duration{500 * ms},
		},
		{
			name:      "a body too large",
			configure: func(c *DefiLlamaConfig) { c.MaxBodyBytes = 1000 },
			wantHits:  1,
			wantErr:   "defillama: GET /pools: http: request body too large",
			check: func(t *testing.T, err error) {
				var tooBig *http.MaxBytesError
				if !errors.As(err, &tooBig) || tooBig.Limit != 1000 {
					t.Errorf("Poll() error = %v, want an *http.MaxBytesError of 1000", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			configure := func(*DefiLlamaConfig) {}
			if tt.configure != nil {
				configure = tt.configure
			}
			d, b := setupLlama(t, configure)
			b.fake.setAnswer(tt.answer)
			got, err := d.Poll(context.Background(), []obsqra.Protocol{llamaProtocol("zklend", "starknet", DefiLlamaProject, "zklend")}, nil, llamaNow)
			if tt.wantErr == "" {
				if err != nil || len(got) != 1 || got[0].ApyBps != 326 {
					t.Errorf("Poll() = %+v, %v; want zklend's sample", got, err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Poll() error = %v, want %q", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("Poll() = %+v with an error, want nil", got)
				}
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			if n := b.fake.count("/pools"); n != tt.wantHits {
				t.Errorf("/pools was requested %d times, want %d", n, tt.wantHits)
			}
			if waits := b.waited(); !reflect.DeepEqual(waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
			}
		})
	}
}

func TestDefiLlamaConnectionRefused(t *testing.T) {
	t.Parallel()
	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	// A paid plan's URL carries its API key, which no error may show.
	d, b := setupLlama(t, func(c *DefiLlamaConfig) { c.BaseURL = url + "/KEY123/" })
	_, err := d.Poll(context.Background(), []obsqra.Protocol{llamaProtocol("vesu", "starknet", DefiLlamaPoolID, poolVesuUSDC)}, nil, llamaNow)
	if err == nil || !strings.Contains(err.Error(), `defillama: GET /pools: failed 4 times, the last: Get "/pools": dial tcp `) ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Poll() error = %v, want a refused connection to /pools", err)
	}
	if err != nil && strings.Contains(err.Error(), "KEY123") {
		t.Errorf("Poll() error = %q shows the URL's API key", err)
	}
	if n := len(b.waited()); n != 3 {
		t.Errorf("waited %d times, want 3", n)
	}
}

func TestDefiLlamaCanceledWhileWaiting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, b := setupLlama(t, func(c *DefiLlamaConfig) {
		c.Wait = func(ctx context.Context, _ time.Duration) error {
			cancel() // the server shuts down during the backoff
			<-ctx.Done()
			return ctx.Err()
		}
	})
	b.fake.setAnswer(func(w http.ResponseWriter, r *http.Request, n int) bool {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	})
	_, err := d.Poll(ctx, []obsqra.Protocol{llamaProtocol("vesu", "starknet", DefiLlamaPoolID, poolVesuUSDC)}, nil, llamaNow)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "defillama: GET /pools: context canceled (attempt 1: status 503") {
		t.Errorf("Poll() error = %v, want context.Canceled after the first 503", err)
	}
	if n := b.fake.count("/pools"); n != 1 {
		t.Errorf("/pools was requested %d times, want 1", n)
	}
}

func TestDefiLlamaCanceledDuringRequest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, b := setupLlama(t)
	b.fake.setAnswer(func(w http.ResponseWriter, r *http.Request, n int) bool {
		cancel()
		<-r.Context().Done()
		return true
	})
	_, err := d.Poll(ctx, []obsqra.Protocol{llamaProtocol("vesu", "starknet", DefiLlamaPoolID, poolVesuUSDC)}, nil, llamaNow)
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "defillama: GET /pools: ") {
		t.Errorf("Poll() error = %v, want context.Canceled", err)
	}
	if n := b.fake.count("/pools"); n != 1 {
		t.Errorf("/pools was requested %d times, want 1", n)
	}
	if waits := b.waited(); len(waits) != 0 {
		t.Errorf("waited %v after the cancellation, want no wait", waits)
	}
}
