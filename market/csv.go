package market

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/aave"
)

// Formats of a metrics CSV, as Import.Format names them.
const (
	FormatGeneric = "generic"
	FormatAaveV3  = "aave-v3"
)

// Import is what a metrics CSV holds: samples, and for the Aave format the
// protocols they need.
type Import struct {
	// Format is FormatGeneric or FormatAaveV3.
	Format string
	// Protocols are the protocols to create when missing (Aave format only),
	// sorted by slug.
	Protocols []obsqra.ProtocolInput
	// Samples are in file order (generic) or by protocol slug, then time
	// (Aave).
	Samples []obsqra.MetricsInput
}

// ParseMetricsCSV reads a metrics CSV in one of two formats, told apart by
// the header row: a header with the columns snapshot_utc and
// current_liquidity_rate is the Aave V3 format, any other header the generic
// one. It validates the whole file before returning anything, and stops at
// the first error: a bad file yields no Import at all.
//
// # Generic format
//
// The first row is the header; its names are, in any order and in
// any letter case:
//
//	protocol         required  the protocol's slug (a-z, 0-9 and "-", not
//	                           starting with "-", at most 63 characters)
//	observed_at      required  an RFC 3339 time ("2025-07-22T21:38:59Z",
//	                           offset required, fraction optional), or a
//	                           YYYY-MM-DD date meaning midnight UTC
//	apy_bps          required  the supply APY, an integer in basis points
//	                           (350 = 3.5 %)
//	tvl_usd          optional  the TVL in USD, an exact non-negative decimal
//	                           in plain notation ("1250000.50"); an empty
//	                           cell or no column means unknown
//	utilization_bps  optional  an integer 0–10000; an empty cell or no
//	                           column means 0
//
// No other column is allowed, and none may appear twice. Every row has as
// many fields as the header. Fields follow RFC 4180 (double quotes around a
// field with a comma, a quote or a newline); spaces around a name or a
// value are ignored, empty lines are skipped, and a UTF-8 byte order mark
// is ignored. A protocol may not have two rows at the same time. Times are
// kept in UTC. For example:
//
//	protocol,observed_at,apy_bps,tvl_usd,utilization_bps
//	nostra,2025-07-22T12:00:00Z,412,18250000.75,6120
//	zklend,2025-07-22,388,,5400
//
// # Aave V3 format
//
// The daily reserve-rate snapshots of aave_v3_daily_rates_dev.csv, read by
// package aave (its columns, checks and error messages). A reserve is an
// asset (asset_address) on a network, and its symbol is the one of its
// latest row in the file: a symbol can change (bridged USDC on Arbitrum
// and Optimism is "USDC" until 2025-08-01, beside native USDC, and
// "USDC.e" after). Each reserve becomes a protocol:
//
//	Slug        "aave-v3-<network>-<symbol>" in lowercase, every character
//	            other than a-z, 0-9 and "-" replaced by "-" ("USDC.e" →
//	            "usdc-e", "USD₮0" → "usd-0")
//	Name        "Aave V3 <Network> <symbol>", e.g. "Aave V3 Gnosis WXDAI"
//	            (the network capitalised, BNB in capitals)
//	Chain       the network in lowercase
//	Category    LENDING
//	AuditScore  aave.AuditScore
//	LaunchedOn  Aave V3's launch day, 2022-03-16 (aave.Launch)
//	Enabled     true
//	SourceIDs   {"aave_v3": "<network>/<symbol>"}
//
// and contributes one sample per UTC day, from its last snapshot of the
// day:
//
//	ObservedAt      the snapshot's time
//	ApyBps          current_liquidity_rate × 10000 (the rate is a fraction,
//	                0.035 = 3.5 %), rounded half away from zero as the
//	                decimal in the file (0.01245 → 125)
//	UtilizationBps  current_liquidity_rate ÷ (current_variable_borrow_rate ×
//	                (1 − reserve_factor)) × 10000, rounded, within 0–10000
//	                (aave.Row.Utilization; 0 when nothing is borrowed)
//	TvlUsd          nil (the file has no TVL)
//
// Two reserves of one network whose symbols make the same slug are an
// error.
//
// Errors: EINVALID naming the line, and the column when one is at fault,
// e.g. `line 7: tvl_usd: "-5" is negative`; other errors are reading
// errors of r.
func ParseMetricsCSV(r io.Reader) (*Import, error) {
	// The format is known only from the header, and the Aave parser reads
	// the header itself, so the file is read once into memory: both
	// formats hold every row in memory anyway.
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read metrics csv: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	header, err := csv.NewReader(bytes.NewReader(data)).Read()
	if errors.Is(err, io.EOF) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "the file is empty")
	}
	if err != nil {
		return nil, csvError(err)
	}
	if isAaveHeader(header) {
		return parseAave(bytes.NewReader(data))
	}
	return parseGeneric(bytes.NewReader(data))
}

func isAaveHeader(header []string) bool {
	var snapshot, rate bool
	for _, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "snapshot_utc":
			snapshot = true
		case "current_liquidity_rate":
			rate = true
		}
	}
	return snapshot && rate
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return obsqra.Errorf(obsqra.EINVALID, "line %d: %v", pe.Line, pe.Err)
	}
	return fmt.Errorf("read metrics csv: %w", err)
}

// Columns of the generic format.
const (
	colProtocol    = "protocol"
	colObservedAt  = "observed_at"
	colApy         = "apy_bps"
	colTvl         = "tvl_usd"
	colUtilization = "utilization_bps"
)

var (
	genericColumns  = []string{colProtocol, colObservedAt, colApy, colTvl, colUtilization}
	requiredColumns = []string{colProtocol, colObservedAt, colApy}
)

func parseGeneric(r io.Reader) (*Import, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // counted here, for a message that says more
	cr.ReuseRecord = true

	header, err := cr.Read()
	if err != nil {
		return nil, csvError(err) // not EOF: ParseMetricsCSV read a header
	}
	headerLine, _ := cr.FieldPos(0)
	at := make(map[string]int, len(genericColumns))
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		if !isGenericColumn(name) {
			return nil, obsqra.Errorf(obsqra.EINVALID, "line %d: unknown column %s (the columns are %s)",
				headerLine, obsqra.QuoteInput(strings.TrimSpace(h)), strings.Join(genericColumns, ", "))
		}
		if _, dup := at[name]; dup {
			return nil, obsqra.Errorf(obsqra.EINVALID, "line %d: column %s appears twice", headerLine, name)
		}
		at[name] = i
	}
	for _, name := range requiredColumns {
		if _, ok := at[name]; !ok {
			return nil, obsqra.Errorf(obsqra.EINVALID, "line %d: column %s is missing", headerLine, name)
		}
	}

	type key struct {
		protocol string
		at       time.Time
	}
	seen := make(map[key]int)
	imp := &Import{Format: FormatGeneric}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, obsqra.Errorf(obsqra.EINVALID, "line %d: %d fields, but the header has %d", line, len(rec), len(header))
		}
		m, err := genericRow(rec, at, line)
		if err != nil {
			return nil, err
		}
		// The store keeps microseconds: times closer than that are the same.
		k := key{m.Protocol, m.ObservedAt.Truncate(time.Microsecond)}
		if prev, ok := seen[k]; ok {
			return nil, obsqra.Errorf(obsqra.EINVALID, "line %d: protocol %s at %s is already on line %d",
				line, m.Protocol, m.ObservedAt.Format(time.RFC3339Nano), prev)
		}
		seen[k] = line
		imp.Samples = append(imp.Samples, m)
	}
	if len(imp.Samples) == 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "the file has a header but no rows")
	}
	return imp, nil
}

func isGenericColumn(name string) bool {
	for _, c := range genericColumns {
		if name == c {
			return true
		}
	}
	return false
}

// genericRow parses one record of the generic format; line is its line in
// the file.
func genericRow(rec []string, at map[string]int, line int) (obsqra.MetricsInput, error) {
	var m obsqra.MetricsInput
	cell := func(col string) (string, bool) {
		i, ok := at[col]
		if !ok {
			return "", false
		}
		return strings.TrimSpace(rec[i]), true
	}
	bad := func(col, format string, args ...any) error {
		return obsqra.Errorf(obsqra.EINVALID, "line %d: %s: %s", line, col, fmt.Sprintf(format, args...))
	}
	required := func(col string) (string, error) {
		v, _ := cell(col)
		if v == "" {
			return "", bad(col, "a value is required")
		}
		return v, nil
	}

	v, err := required(colProtocol)
	if err != nil {
		return m, err
	}
	if !isSlug(v) {
		return m, bad(colProtocol, "%s is not a slug (a-z, 0-9 and \"-\", not starting with \"-\", at most %d characters)", obsqra.QuoteInput(v), maxSlugLen)
	}
	m.Protocol = v

	if v, err = required(colObservedAt); err != nil {
		return m, err
	}
	if m.ObservedAt, err = parseObservedAt(v); err != nil {
		return m, bad(colObservedAt, "%s is not an RFC 3339 time or a YYYY-MM-DD date", obsqra.QuoteInput(v))
	}

	if v, err = required(colApy); err != nil {
		return m, err
	}
	if m.ApyBps, err = parseInt(v); err != nil {
		return m, bad(colApy, "%s %v", obsqra.QuoteInput(v), err)
	}

	if v, ok := cell(colTvl); ok && v != "" {
		d, err := obsqra.ParseDecimal(v)
		if err != nil {
			// Not ParseDecimal's message: it quotes the value twice.
			return m, bad(colTvl, "%s is not a decimal number such as 1250000.5 (at most %d decimal places and %d digits)",
				obsqra.QuoteInput(v), obsqra.MaxDecimalFraction, obsqra.MaxDecimalDigits)
		}
		if d.IsNegative() {
			return m, bad(colTvl, "%s is negative", obsqra.QuoteInput(v))
		}
		m.TvlUsd = &d
	}

	if v, ok := cell(colUtilization); ok && v != "" {
		if m.UtilizationBps, err = parseInt(v); err != nil {
			return m, bad(colUtilization, "%s %v", obsqra.QuoteInput(v), err)
		}
		if m.UtilizationBps < 0 || m.UtilizationBps > 10_000 {
			return m, bad(colUtilization, "%s is outside 0–10000", obsqra.QuoteInput(v))
		}
	}
	return m, nil
}

// maxSlugLen is the longest slug the protocols table accepts.
const maxSlugLen = 63

// isSlug reports whether s is a slug the protocols table accepts.
func isSlug(s string) bool {
	if s == "" || len(s) > maxSlugLen || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func parseObservedAt(s string) (time.Time, error) {
	if len(s) == len(time.DateOnly) {
		d, err := obsqra.ParseDate(s)
		if err != nil {
			return time.Time{}, err
		}
		return d.Time(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// parseInt parses a base-10 integer; its error completes a sentence that
// starts with the value.
func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) {
		return 0, errors.New("is out of range")
	}
	if err != nil {
		return 0, errors.New("is not an integer")
	}
	return n, nil
}

// aaveSource is the SourceIDs key of an Aave V3 reserve.
const aaveSource = "aave_v3"

func parseAave(r io.Reader) (*Import, error) {
	rows, err := aave.Read(r)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "the file has a header but no rows")
	}
	// A reserve is an asset on a network, but aave.Reserves keys reserves by
	// symbol too, and a symbol can change: in the shared data, bridged USDC
	// on Arbitrum and Optimism is "USDC" (beside native USDC, a different
	// asset) until 2025-08-01 and "USDC.e" after. Keyed by network and
	// symbol, the two USDCs would mix in one protocol; so each asset takes
	// the symbol of its latest row, and then aave.Reserves groups and keeps
	// the last row of each day as usual.
	type asset struct{ network, address string }
	latest := make(map[asset]aave.Row)
	for _, row := range rows {
		k := asset{row.Network, row.Asset}
		if l, ok := latest[k]; !ok || !row.Snapshot.Before(l.Snapshot) {
			latest[k] = row
		}
	}
	for i := range rows {
		rows[i].Symbol = latest[asset{rows[i].Network, rows[i].Asset}].Symbol
	}

	reserves := aave.Reserves(rows)
	imp := &Import{Format: FormatAaveV3}
	bySlug := make(map[string]aave.Reserve, len(reserves))
	for _, res := range reserves {
		p, err := aaveProtocol(res)
		if err != nil {
			return nil, err
		}
		if other, ok := bySlug[p.Slug]; ok {
			return nil, obsqra.Errorf(obsqra.EINVALID,
				"reserves %s and %s would both be protocol %s; the file mixes two assets under one symbol",
				other.Key, res.Key, p.Slug)
		}
		bySlug[p.Slug] = res
		imp.Protocols = append(imp.Protocols, p)
	}
	sort.Slice(imp.Protocols, func(i, j int) bool { return imp.Protocols[i].Slug < imp.Protocols[j].Slug })
	for _, p := range imp.Protocols {
		for _, row := range bySlug[p.Slug].Rows {
			imp.Samples = append(imp.Samples, aaveSample(p.Slug, row))
		}
	}
	return imp, nil
}

// aaveSlug returns the protocol slug of an Aave V3 reserve (see
// ParseMetricsCSV).
func aaveSlug(network, symbol string) string {
	s := strings.ToLower("aave-v3-" + network + "-" + symbol)
	var b strings.Builder
	b.Grow(len(s))
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// aaveProtocol returns the protocol of an Aave V3 reserve (see
// ParseMetricsCSV). Errors: EINVALID when its slug is too long.
func aaveProtocol(res aave.Reserve) (obsqra.ProtocolInput, error) {
	slug := aaveSlug(res.Network, res.Symbol)
	if !isSlug(slug) {
		return obsqra.ProtocolInput{}, obsqra.Errorf(obsqra.EINVALID,
			"reserve %s: its slug %s is longer than %d characters", res.Key, slug, maxSlugLen)
	}
	return obsqra.ProtocolInput{
		Slug:       slug,
		Name:       "Aave V3 " + networkName(res.Network) + " " + res.Symbol,
		Chain:      strings.ToLower(res.Network),
		Category:   obsqra.CategoryLending,
		AuditScore: aave.AuditScore,
		LaunchedOn: obsqra.Date(aave.Launch),
		Enabled:    true,
		SourceIDs:  map[string]string{aaveSource: res.Network + "/" + res.Symbol},
	}, nil
}

// networkName is how a protocol's name writes a network: capitalised, and
// BNB in capitals as the chain writes itself.
func networkName(network string) string {
	if strings.EqualFold(network, "bnb") {
		return "BNB"
	}
	r, n := utf8.DecodeRuneInString(network)
	return string(unicode.ToUpper(r)) + network[n:]
}

// aaveSample returns the sample of a reserve's daily row (see
// ParseMetricsCSV).
func aaveSample(slug string, row aave.Row) obsqra.MetricsInput {
	return obsqra.MetricsInput{
		Protocol:       slug,
		ObservedAt:     row.Snapshot.UTC(),
		ApyBps:         fractionToBps(row.LiquidityRate),
		UtilizationBps: min(max(int(math.Round(row.Utilization()*10_000)), 0), 10_000),
	}
}

var tenThousand = big.NewInt(10_000)

// fractionToBps returns f × 10000 rounded half away from zero, as the
// decimal the file wrote rounds: f's shortest decimal form is that text
// (for up to 15 significant digits), whereas the float product can miss a
// half (0.01245 × 10000 is 124.49999999999999 in floats, 124.5 in the file).
func fractionToBps(f float64) int {
	// Away from a half, the float product's error (under 1e-9 for any rate
	// package aave accepts) cannot change the rounding: the exact path is
	// for the halves only.
	if y := f * 10_000; math.Abs(math.Abs(y-math.Trunc(y))-0.5) > 1e-6 {
		return int(math.Round(y))
	}
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'f', -1, 64))
	if !ok { // NaN or ±Inf; package aave refuses them
		return 0
	}
	num := new(big.Int).Mul(r.Num(), tenThousand)
	q, m := new(big.Int).QuoRem(num, r.Denom(), new(big.Int)) // q truncated toward zero
	if m.Abs(m).Lsh(m, 1).Cmp(r.Denom()) >= 0 {
		q.Add(q, big.NewInt(int64(num.Sign())))
	}
	return int(q.Int64())
}
