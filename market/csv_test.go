package market

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/aave"
	"github.com/obsqra/obsqra/obsqratest"
)

func parseFile(t *testing.T, path string) *Import {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imp, err := ParseMetricsCSV(f)
	if err != nil {
		t.Fatalf("ParseMetricsCSV(%s): %v", path, err)
	}
	return imp
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC()
}

func decimal(s string) *obsqra.Decimal {
	d := obsqra.MustDecimal(s)
	return &d
}

func TestParseMetricsCSVGeneric(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []obsqra.MetricsInput
	}{
		{"testdata/import/generic.csv", []obsqra.MetricsInput{
			{Protocol: "nostra", ObservedAt: mustTime(t, "2025-07-22T12:00:00Z"), ApyBps: 412, TvlUsd: decimal("18250000.75"), UtilizationBps: 6120},
			// A date is midnight UTC; an empty tvl_usd is unknown.
			{Protocol: "zklend", ObservedAt: mustTime(t, "2025-07-22T00:00:00Z"), ApyBps: 388, UtilizationBps: 5400},
			// An offset is turned into UTC; an empty utilization is 0.
			{Protocol: "vesu", ObservedAt: mustTime(t, "2025-07-22T12:30:00.5Z"), ApyBps: -15, TvlUsd: decimal("12.5")},
			{Protocol: "ekubo", ObservedAt: mustTime(t, "2025-07-23T00:00:00Z"), TvlUsd: decimal("1000000"), UtilizationBps: 10_000},
		}},
		{"testdata/import/generic_reordered.csv", []obsqra.MetricsInput{
			{Protocol: "nostra", ObservedAt: mustTime(t, "2025-07-24T00:00:00Z"), ApyBps: 350},
			{Protocol: "nostra", ObservedAt: mustTime(t, "2025-07-25T00:00:00Z"), ApyBps: 351},
		}},
	}
	for _, tt := range tests {
		imp := parseFile(t, tt.file)
		if imp.Format != FormatGeneric || imp.Protocols != nil {
			t.Errorf("%s: Format = %q with %d protocols, want %q and none", tt.file, imp.Format, len(imp.Protocols), FormatGeneric)
		}
		if !reflect.DeepEqual(imp.Samples, tt.want) {
			t.Errorf("%s: Samples =\n%+v\nwant\n%+v", tt.file, imp.Samples, tt.want)
		}
		for _, s := range imp.Samples {
			if s.ObservedAt.Location() != time.UTC {
				t.Errorf("%s: ObservedAt %v is not in UTC", tt.file, s.ObservedAt)
			}
		}
	}
}

func TestParseMetricsCSVGenericByteOrderMark(t *testing.T) {
	t.Parallel()
	imp, err := ParseMetricsCSV(strings.NewReader("\uFEFFprotocol,observed_at,apy_bps\nnostra,2025-07-22,1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Samples) != 1 || imp.Samples[0].Protocol != "nostra" {
		t.Errorf("Samples = %+v, want one of nostra", imp.Samples)
	}
}

func TestParseMetricsCSVGenericErrors(t *testing.T) {
	t.Parallel()
	const head = "protocol,observed_at,apy_bps,tvl_usd,utilization_bps\n"
	const ok = "nostra,2025-07-22,400,1000,5000\n"
	const slugRule = `(a-z, 0-9 and "-", not starting with "-", at most 63 characters)`
	tests := []struct {
		name, csv, want string
	}{
		{"empty file", "", "the file is empty"},
		{"only empty lines", "\n\n", "the file is empty"},
		{"header only", head, "the file has a header but no rows"},
		{"unknown column", "protocol,observed_at,apy_bps,tvl\nnostra,2025-07-22,1,2\n",
			`line 1: unknown column "tvl" (the columns are protocol, observed_at, apy_bps, tvl_usd, utilization_bps)`},
		{"empty column name", "protocol,observed_at,apy_bps,\nnostra,2025-07-22,1,\n",
			`line 1: unknown column "" (the columns are protocol, observed_at, apy_bps, tvl_usd, utilization_bps)`},
		{"missing required column", "protocol,apy_bps\nnostra,1\n", "line 1: column observed_at is missing"},
		{"missing apy_bps", "observed_at,protocol,tvl_usd\n2025-07-22,nostra,1\n", "line 1: column apy_bps is missing"},
		{"column twice", "protocol,observed_at,apy_bps,APY_BPS\nnostra,2025-07-22,1,1\n", "line 1: column apy_bps appears twice"},
		{"too few fields", head + ok + "nostra,2025-07-23,400\n", "line 3: 3 fields, but the header has 5"},
		{"too many fields", head + ok + "nostra,2025-07-23,400,1,2,3\n", "line 3: 6 fields, but the header has 5"},
		{"line counts blank lines", head + ok + "\n\n" + "nostra,2025-07-23\n", "line 5: 2 fields, but the header has 5"},
		{"line counts quoted newlines", head + "nostra,2025-07-22,400,\"1\n\",5000\n" + "x,2025-07-23,1,1,1,1\n",
			"line 4: 6 fields, but the header has 5"},
		{"bad quote", head + "nostra,2025-07-22,4\"00,1,1\n", `line 2: bare " in non-quoted-field`},
		{"protocol empty", head + ",2025-07-22,400,1000,5000\n", "line 2: protocol: a value is required"},
		{"protocol not a slug", head + "Nostra,2025-07-22,400,1000,5000\n", `line 2: protocol: "Nostra" is not a slug ` + slugRule},
		{"protocol with a space", head + "my protocol,2025-07-22,400,1000,5000\n", `line 2: protocol: "my protocol" is not a slug ` + slugRule},
		{"protocol starting with a dash", head + "-x,2025-07-22,400,1000,5000\n", `line 2: protocol: "-x" is not a slug ` + slugRule},
		{"protocol too long", head + strings.Repeat("a", 64) + ",2025-07-22,400,1000,5000\n",
			`line 2: protocol: "` + strings.Repeat("a", 64) + `" is not a slug ` + slugRule},
		{"observed_at empty", head + "nostra,,400,1000,5000\n", "line 2: observed_at: a value is required"},
		{"observed_at no such day", head + "nostra,2025-02-30,400,1000,5000\n",
			`line 2: observed_at: "2025-02-30" is not an RFC 3339 time or a YYYY-MM-DD date`},
		{"observed_at without offset", head + "nostra,2025-07-22T12:00:00,400,1000,5000\n",
			`line 2: observed_at: "2025-07-22T12:00:00" is not an RFC 3339 time or a YYYY-MM-DD date`},
		{"observed_at with a space", head + "nostra,2025-07-22 12:00:00Z,400,1000,5000\n",
			`line 2: observed_at: "2025-07-22 12:00:00Z" is not an RFC 3339 time or a YYYY-MM-DD date`},
		{"observed_at unix seconds", head + "nostra,1753219175,400,1000,5000\n",
			`line 2: observed_at: "1753219175" is not an RFC 3339 time or a YYYY-MM-DD date`},
		{"apy_bps empty", head + "nostra,2025-07-22,,1000,5000\n", "line 2: apy_bps: a value is required"},
		{"apy_bps a fraction", head + "nostra,2025-07-22,3.5,1000,5000\n", `line 2: apy_bps: "3.5" is not an integer`},
		{"apy_bps a percentage", head + "nostra,2025-07-22,4%,1000,5000\n", `line 2: apy_bps: "4%" is not an integer`},
		{"apy_bps too big", head + "nostra,2025-07-22,99999999999999999999,1000,5000\n",
			`line 2: apy_bps: "99999999999999999999" is out of range`},
		{"utilization above 10000", head + ok + "nostra,2025-07-23,400,1000,10001\n",
			`line 3: utilization_bps: "10001" is outside 0–10000`},
		{"utilization negative", head + "nostra,2025-07-22,400,1000,-1\n", `line 2: utilization_bps: "-1" is outside 0–10000`},
		{"utilization a fraction", head + "nostra,2025-07-22,400,1000,0.5\n", `line 2: utilization_bps: "0.5" is not an integer`},
		{"tvl negative", head +
			"a,2025-07-01,1,1,1\nb,2025-07-01,1,1,1\nc,2025-07-01,1,1,1\nd,2025-07-01,1,1,1\ne,2025-07-01,1,1,1\n" +
			"nostra,2025-07-22,400,-5,5000\n", `line 7: tvl_usd: "-5" is negative`},
		{"tvl with an exponent", head + "nostra,2025-07-22,400,1e6,5000\n", `line 2: tvl_usd: "1e6" is not a decimal number such as 1250000.5 (at most 18 decimal places and 78 digits)`},
		{"tvl with a separator", head + "nostra,2025-07-22,400,\"1,000\",5000\n", `line 2: tvl_usd: "1,000" is not a decimal number such as 1250000.5 (at most 18 decimal places and 78 digits)`},
		{"tvl with too many decimals", head + "nostra,2025-07-22,400,0.1234567890123456789,5000\n",
			`line 2: tvl_usd: "0.1234567890123456789" is not a decimal number such as 1250000.5 (at most 18 decimal places and 78 digits)`},
		{"long value cut", head + "nostra,2025-07-22," + strings.Repeat("9", 100) + ",1,1\n",
			`line 2: apy_bps: "` + strings.Repeat("9", 77) + `…" is out of range`},
		{"the same time twice", head + ok + "zklend,2025-07-22,1,1,1\n" + "nostra,2025-07-22T02:00:00+02:00,1,1,1\n",
			"line 4: protocol nostra at 2025-07-22T00:00:00Z is already on line 2"},
		// The first error is the one reported, even when a later row is
		// also bad.
		{"first error wins", head + "nostra,2025-07-22,x,1000,5000\nnostra,x,1,1,1\n", `line 2: apy_bps: "x" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			imp, err := ParseMetricsCSV(strings.NewReader(tt.csv))
			if err == nil {
				t.Fatalf("ParseMetricsCSV = %+v, want error %q", imp, tt.want)
			}
			if imp != nil {
				t.Errorf("ParseMetricsCSV returned an import with its error: %+v", imp)
			}
			if code, msg := obsqra.ErrorCode(err), obsqra.ErrorMessage(err); code != obsqra.EINVALID || msg != tt.want {
				t.Errorf("ParseMetricsCSV error = %s %q, want %s %q", code, msg, obsqra.EINVALID, tt.want)
			}
		})
	}
}

func TestParseMetricsCSVReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	_, err := ParseMetricsCSV(iotest.ErrReader(boom))
	if !errors.Is(err, boom) || obsqra.ErrorCode(err) != obsqra.EINTERNAL {
		t.Errorf("ParseMetricsCSV(failing reader) = %v (code %s), want %v, internal", err, obsqra.ErrorCode(err), boom)
	}
}

func TestParseMetricsCSVAaveExcerpt(t *testing.T) {
	t.Parallel()
	imp := parseFile(t, "../aave/testdata/excerpt.csv")
	if imp.Format != FormatAaveV3 {
		t.Errorf("Format = %q, want %q", imp.Format, FormatAaveV3)
	}
	gno := obsqra.ProtocolInput{
		Slug:       "aave-v3-gnosis-gno",
		Name:       "Aave V3 Gnosis GNO",
		Chain:      "gnosis",
		Category:   obsqra.CategoryLending,
		AuditScore: aave.AuditScore,
		LaunchedOn: mustDate(t, "2022-03-16"),
		Enabled:    true,
		SourceIDs:  map[string]string{"aave_v3": "gnosis/GNO"},
	}
	wxdai := gno
	wxdai.Slug, wxdai.Name, wxdai.SourceIDs = "aave-v3-gnosis-wxdai", "Aave V3 Gnosis WXDAI", map[string]string{"aave_v3": "gnosis/WXDAI"}
	if want := []obsqra.ProtocolInput{gno, wxdai}; !reflect.DeepEqual(imp.Protocols, want) {
		t.Errorf("Protocols =\n%+v\nwant\n%+v", imp.Protocols, want)
	}

	// Five days each (07-23 is missing; 08-01 has four snapshots), GNO first.
	if len(imp.Samples) != 10 {
		t.Fatalf("%d samples, want 10", len(imp.Samples))
	}
	var days []string
	for _, s := range imp.Samples {
		days = append(days, s.Protocol[len("aave-v3-gnosis-"):]+"@"+s.ObservedAt.Format(time.DateOnly))
		if s.TvlUsd != nil {
			t.Errorf("%s at %v: TvlUsd = %v, want nil", s.Protocol, s.ObservedAt, s.TvlUsd)
		}
	}
	wantDays := "gno@2025-07-22 gno@2025-07-24 gno@2025-07-25 gno@2025-08-01 gno@2025-08-02 " +
		"wxdai@2025-07-22 wxdai@2025-07-24 wxdai@2025-07-25 wxdai@2025-08-01 wxdai@2025-08-02"
	if got := strings.Join(days, " "); got != wantDays {
		t.Errorf("samples =\n%s\nwant\n%s", got, wantDays)
	}

	// Worked by hand from the rows of excerpt.csv; utilization is
	// current_liquidity_rate / (current_variable_borrow_rate × (1 − reserve_factor)).
	tests := []struct {
		i    int
		want obsqra.MetricsInput
	}{
		// 0.004717 → 47.17 bps; 0.004717 / (0.03325 × 0.8) = 0.17733
		{0, obsqra.MetricsInput{Protocol: "aave-v3-gnosis-gno", ObservedAt: mustTime(t, "2025-07-22T21:38:59.079868Z"), ApyBps: 47, UtilizationBps: 1773}},
		// The last of four snapshots on 08-01 (04:23:17): 0.00366 → 36.6;
		// 0.00366 / (0.029289 × 0.8) = 0.15620
		{3, obsqra.MetricsInput{Protocol: "aave-v3-gnosis-gno", ObservedAt: mustTime(t, "2025-08-01T04:23:17.364213Z"), ApyBps: 37, UtilizationBps: 1562}},
		// 0.00415 → 41.5, a half, away from zero; 0.00415 / (0.031189 × 0.8) = 0.16632
		{4, obsqra.MetricsInput{Protocol: "aave-v3-gnosis-gno", ObservedAt: mustTime(t, "2025-08-02T00:16:58.208143Z"), ApyBps: 42, UtilizationBps: 1663}},
		// 0.02916 → 291.6; 0.02916 / (0.048744 × 0.75) = 0.79764
		{5, obsqra.MetricsInput{Protocol: "aave-v3-gnosis-wxdai", ObservedAt: mustTime(t, "2025-07-22T21:38:59.079868Z"), ApyBps: 292, UtilizationBps: 7976}},
		// 0.028678 → 286.78; 0.028678 / (0.04834 × 0.75) = 0.79101
		{8, obsqra.MetricsInput{Protocol: "aave-v3-gnosis-wxdai", ObservedAt: mustTime(t, "2025-08-01T04:23:17.364213Z"), ApyBps: 287, UtilizationBps: 7910}},
	}
	for _, tt := range tests {
		if got := imp.Samples[tt.i]; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Samples[%d] = %+v, want %+v", tt.i, got, tt.want)
		}
	}
}

func mustDate(t *testing.T, s string) obsqra.Date {
	t.Helper()
	d, err := obsqra.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestParseMetricsCSVAaveRenamedSymbol checks that a reserve is its asset:
// bridged USDC keeps one protocol, under its latest symbol, through its
// rename, and never mixes with native USDC that shared its old symbol.
func TestParseMetricsCSVAaveRenamedSymbol(t *testing.T) {
	t.Parallel()
	imp := parseFile(t, "testdata/import/aave_renamed.csv")
	type protocol struct{ slug, name, chain, sourceID, launched string }
	var got []protocol
	for _, p := range imp.Protocols {
		got = append(got, protocol{p.Slug, p.Name, p.Chain, p.SourceIDs["aave_v3"], p.LaunchedOn.String()})
	}
	want := []protocol{
		{"aave-v3-arbitrum-usd-0", "Aave V3 Arbitrum USD₮0", "arbitrum", "arbitrum/USD₮0", "2022-03-16"},
		{"aave-v3-arbitrum-usdc", "Aave V3 Arbitrum USDC", "arbitrum", "arbitrum/USDC", "2022-03-16"},
		{"aave-v3-arbitrum-usdc-e", "Aave V3 Arbitrum USDC.e", "arbitrum", "arbitrum/USDC.e", "2022-03-16"},
		{"aave-v3-bnb-usdt", "Aave V3 BNB USDT", "bnb", "bnb/USDT", "2022-03-16"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Protocols =\n%+v\nwant\n%+v", got, want)
	}

	type sample struct {
		slug, at    string
		apy, util   int
		tvlIsNotNil bool
	}
	var samples []sample
	for _, s := range imp.Samples {
		samples = append(samples, sample{s.Protocol, s.ObservedAt.Format(time.RFC3339), s.ApyBps, s.UtilizationBps, s.TvlUsd != nil})
	}
	wantSamples := []sample{
		// 0.00145 × 10000 = 14.5 → 15 (14.499999999999998 in floats);
		// 0.00145 / (0.002 × 0.9) = 0.80556
		{"aave-v3-arbitrum-usd-0", "2025-07-31T10:00:00Z", 15, 8056, false},
		// A zero rate: nothing earned, so nothing counted as borrowed.
		{"aave-v3-arbitrum-usd-0", "2025-08-01T09:30:00Z", 0, 0, false},
		// 0.04 / (0.05 × 0.9) = 0.88889
		{"aave-v3-arbitrum-usdc", "2025-07-31T10:00:00Z", 400, 8889, false},
		// The day's last row (09:30), not the 02:00 one.
		{"aave-v3-arbitrum-usdc", "2025-08-01T09:30:00Z", 350, 7778, false},
		// Labelled USDC that day: 0.01245 × 10000 = 124.5 → 125
		// (124.49999999999999 in floats); 0.01245 / (0.06 × 0.9) = 0.23056
		{"aave-v3-arbitrum-usdc-e", "2025-07-31T10:00:00Z", 125, 2306, false},
		// Its last row of 08-01 is labelled USDC.e; 0.025 / 0.045 = 0.55556
		{"aave-v3-arbitrum-usdc-e", "2025-08-01T09:30:00Z", 250, 5556, false},
		// 0.05 / (0.04 × 0.9) > 1: clamped to 10000.
		{"aave-v3-bnb-usdt", "2025-07-31T10:00:00Z", 500, 10_000, false},
	}
	if !reflect.DeepEqual(samples, wantSamples) {
		t.Errorf("Samples =\n%+v\nwant\n%+v", samples, wantSamples)
	}
}

const aaveHeader = "snapshot_utc,network,symbol,asset_address,current_liquidity_rate,current_variable_borrow_rate," +
	"liquidity_index,variable_borrow_index,reserve_factor,frozen,paused,active,borrowing_enabled\n"

func aaveLine(at, network, symbol, asset string) string {
	return fmt.Sprintf("%s,%s,%s,%s,0.03,0.05,1.01,1.02,0.1,False,False,True,True\n", at, network, symbol, asset)
}

func TestParseMetricsCSVAaveErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, csv, want string
	}{
		{"header only", aaveHeader, "the file has a header but no rows"},
		// Package aave's own checks and messages.
		{"bad rate", aaveHeader + "2025-08-01T00:00:00Z,gnosis,GNO,0x1,abc,0.05,1.01,1.02,0.1,False,False,True,True\n",
			`CSV line 2, column current_liquidity_rate: "abc" is not a finite number`},
		{"missing column", "snapshot_utc,network,current_liquidity_rate\n2025-08-01T00:00:00Z,gnosis,0.1\n",
			"the CSV has no symbol column"},
		{"two assets, one slug", aaveHeader + aaveLine("2025-08-01T00:00:00Z", "ethereum", "USDT", "0xa") +
			aaveLine("2025-08-01T00:00:00Z", "ethereum", "USDt", "0xb"),
			"reserves ethereum/USDT/0xa and ethereum/USDt/0xb would both be protocol aave-v3-ethereum-usdt; " +
				"the file mixes two assets under one symbol"},
		{"slug too long", aaveHeader + aaveLine("2025-08-01T00:00:00Z", "ethereum", strings.Repeat("X", 50), "0xa"),
			"reserve ethereum/" + strings.Repeat("X", 50) + "/0xa: its slug aave-v3-ethereum-" + strings.Repeat("x", 50) +
				" is longer than 63 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			imp, err := ParseMetricsCSV(strings.NewReader(tt.csv))
			if imp != nil || err == nil {
				t.Fatalf("ParseMetricsCSV = %+v, %v; want error %q", imp, err, tt.want)
			}
			if code, msg := obsqra.ErrorCode(err), obsqra.ErrorMessage(err); code != obsqra.EINVALID || msg != tt.want {
				t.Errorf("ParseMetricsCSV error = %s %q, want %s %q", code, msg, obsqra.EINVALID, tt.want)
			}
		})
	}
}

func TestFractionToBps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f    float64
		want int
	}{
		{0, 0},
		{0.035, 350},
		{0.004717, 47},
		{0.00415, 42},  // 41.5
		{0.01245, 125}, // 124.5, 124.49999999999999 in floats
		{0.00145, 15},  // 14.5, 14.499999999999998 in floats
		{0.0124500001, 125},
		{0.0124499999, 124},
		{0.00005, 1}, // 0.5
		{0.0000499, 0},
		{0.0000285, 0},
		{0.575794, 5758},
		{-0.00145, -15}, // away from zero on both sides
		{1000, 10_000_000},
	}
	for _, tt := range tests {
		if got := fractionToBps(tt.f); got != tt.want {
			t.Errorf("fractionToBps(%v) = %d, want %d", tt.f, got, tt.want)
		}
	}
}

func TestAaveSlug(t *testing.T) {
	t.Parallel()
	tests := []struct{ network, symbol, want string }{
		{"ethereum", "USDC", "aave-v3-ethereum-usdc"},
		{"avalanche", "USDC.e", "aave-v3-avalanche-usdc-e"},
		{"arbitrum", "USD₮0", "aave-v3-arbitrum-usd-0"},
		{"ethereum", "PT-sUSDE-25SEP2025", "aave-v3-ethereum-pt-susde-25sep2025"},
		{"Base", "cbBTC", "aave-v3-base-cbbtc"},
		{"ethereum", "1INCH", "aave-v3-ethereum-1inch"},
	}
	for _, tt := range tests {
		if got := aaveSlug(tt.network, tt.symbol); got != tt.want {
			t.Errorf("aaveSlug(%q, %q) = %q, want %q", tt.network, tt.symbol, got, tt.want)
		}
	}
}

// sharedAave is the real Aave V3 file of the shared data
// (obsqratest.SharedData finds its folder); tests that need it skip without
// it, or fail when REQUIRE_SHARED_DATA=1.
const sharedAave = "aave_v3_daily_rates_dev.csv"

func readSharedAave(tb testing.TB) []byte {
	tb.Helper()
	data, err := os.ReadFile(obsqratest.SharedData(tb, sharedAave))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func TestImportSharedDataAave(t *testing.T) {
	t.Parallel()
	data := readSharedAave(t)
	imp, err := ParseMetricsCSV(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if imp.Format != FormatAaveV3 {
		t.Errorf("Format = %q, want %q", imp.Format, FormatAaveV3)
	}

	// What to expect, counted independently of the code under test: a
	// reserve is an asset on a network, with a sample per UTC day it
	// appears on.
	cr := csv.NewReader(bytes.NewReader(data))
	header, err := cr.Read()
	if err != nil {
		t.Fatal(err)
	}
	col := make(map[string]int)
	for i, h := range header {
		col[h] = i
	}
	type reserve struct{ network, asset string }
	reserveDays := make(map[reserve]map[string]bool)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		k := reserve{rec[col["network"]], strings.ToLower(rec[col["asset_address"]])}
		if reserveDays[k] == nil {
			reserveDays[k] = make(map[string]bool)
		}
		reserveDays[k][rec[col["snapshot_utc"]][:len(time.DateOnly)]] = true
	}
	wantSamples := 0
	for _, days := range reserveDays {
		wantSamples += len(days)
	}
	if len(imp.Protocols) != len(reserveDays) {
		t.Errorf("%d protocols, want one per reserve: %d", len(imp.Protocols), len(reserveDays))
	}
	if len(imp.Samples) != wantSamples {
		t.Errorf("%d samples, want one per reserve and day: %d", len(imp.Samples), wantSamples)
	}

	slugs := make(map[string]obsqra.ProtocolInput)
	for i, p := range imp.Protocols {
		if !isSlug(p.Slug) || !strings.HasPrefix(p.Slug, "aave-v3-"+p.Chain+"-") {
			t.Errorf("protocol slug %q is not a valid aave-v3-<network>- slug", p.Slug)
		}
		if i > 0 && imp.Protocols[i-1].Slug >= p.Slug {
			t.Errorf("protocols %s, %s are not sorted and unique", imp.Protocols[i-1].Slug, p.Slug)
		}
		if p.Category != obsqra.CategoryLending || !p.Enabled || p.AuditScore != aave.AuditScore ||
			len(p.Name) == 0 || len([]rune(p.Name)) > 100 || p.SourceIDs["aave_v3"] == "" {
			t.Errorf("protocol %+v", p)
		}
		slugs[p.Slug] = p
	}
	// Bridged USDC was "USDC" beside native USDC until 2025-08-01: both
	// are protocols, and the bridged one keeps its history from the start.
	for _, s := range []string{"aave-v3-arbitrum-usdc", "aave-v3-arbitrum-usdc-e", "aave-v3-optimism-usdc", "aave-v3-optimism-usdc-e"} {
		if p, ok := slugs[s]; !ok {
			t.Errorf("no protocol %s", s)
		} else if p.LaunchedOn.String() != "2022-03-16" {
			t.Errorf("%s: LaunchedOn = %s, want Aave V3's launch 2022-03-16", s, p.LaunchedOn)
		}
	}

	for i, s := range imp.Samples {
		if _, ok := slugs[s.Protocol]; !ok {
			t.Fatalf("sample %d of unknown protocol %s", i, s.Protocol)
		}
		if s.ApyBps < 0 || s.ApyBps > 1_000_000 || s.UtilizationBps < 0 || s.UtilizationBps > 10_000 || s.TvlUsd != nil {
			t.Errorf("sample %d out of range: %+v", i, s)
		}
		if i > 0 {
			prev := imp.Samples[i-1]
			if prev.Protocol > s.Protocol ||
				prev.Protocol == s.Protocol && obsqra.DateOf(prev.ObservedAt) >= obsqra.DateOf(s.ObservedAt) {
				t.Errorf("samples %d and %d are not one per day by protocol then time: %+v, %+v", i-1, i, prev, s)
			}
		}
	}
}

func BenchmarkParseMetricsCSVSharedAave(b *testing.B) {
	data := readSharedAave(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseMetricsCSV(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
