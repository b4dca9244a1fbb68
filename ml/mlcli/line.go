package mlcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
	"gonum.org/v1/gonum/mat"
)

// Usage is the help text of `obsqra ml`.
const Usage = `usage: obsqra ml COMMAND
Line commands read one JSON object per line on stdin and write one JSON line
per input on stdout; an invalid line gives {"error":{"code":"EINVALID",...}}
and the rest go on.
  score      {"utilization","volatility","liquidity","auditScore","ageDays","params"?}
             → {"score","components":{...}}   (the RiskEngine contract's score)
  allocate   {"risks":[...],"apys":[...]} → {"weights":[...]}   (the contract's allocation)
  verify     {"weights":[...],"maxSingle","minDiversification"} → {"ok":...}
  optimize   {"expectedApyBps":[...],"covariance":[[...]] | "histories":[[...]],"risks":[...],
              "maxSingleBps","minDiversification","riskTolerance" | "riskAversion"}
             → {"weightsBps":[...],"expectedApyBps","variance","objective"}
File commands read a CSV in the format of ../shared/data/aave_v3_daily_rates_dev.csv:
  forecast --csv FILE --horizon H [--every N] [--model M]   one JSON line per series and origin
  backtest --csv FILE --horizon H [--every N] [--model M] [--by-network | --leave-one-network-out]
                                                             one JSON object of accuracy figures,
                                                             then one per network with --by-network;
                                                             --leave-one-network-out fits the global
                                                             model on all networks but one and scores
                                                             that one, for each (a line each, and one
                                                             pooling them first)
             M is a forecasting method: global (fitted across series, see fit),
             naive, drift, medianK, ses, holt, damped,
             ets (the smoothing model of least AICc), combo(a,b,…) (their mean),
             select(a,b,…) (per series, the one with the least past error);
             default ` + ml.DefaultModel + `
  fit --csv FILE [--out PATH]   fit the global model on every series of the file and
                                write its parameters as the Go source of ml.DefaultGlobal
  strategies --csv FILE [--every 7] [--thresholds 0,100,500] [--cost 5]
             strategy backtests on each network's USD stablecoin reserves:
             equal weight, the contract's parity and the highest APY move
             when the drift reaches the threshold (bps of turnover); the
             optimiser when its forecast gain net of cost reaches it (bps/yr)
`

// Run runs `obsqra ml COMMAND`.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("ml: missing command\n%s", Usage)
	}
	cmd, args := args[0], args[1:]
	line := map[string]func([]byte) (any, error){
		"score":    mlScore,
		"allocate": mlAllocate,
		"verify":   mlVerify,
		"optimize": mlOptimize,
	}
	if fn, ok := line[cmd]; ok {
		if len(args) > 0 {
			return fmt.Errorf("ml %s: unexpected arguments %q", cmd, args)
		}
		return eachLine(ctx, stdin, stdout, fn)
	}
	switch cmd {
	case "forecast":
		return mlForecast(ctx, args, stdout)
	case "backtest":
		return mlBacktest(ctx, args, stdout)
	case "strategies":
		return mlStrategies(ctx, args, stdout)
	case "fit":
		return mlFit(ctx, args, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, Usage)
		return nil
	}
	return fmt.Errorf("ml: unknown command %q\n%s", cmd, Usage)
}

// maxLineBytes bounds one input line; a longer line is answered with an
// error and skipped, so one bad line never stops the stream.
const maxLineBytes = 16 << 20

// eachLine calls fn with every non-blank line of r and writes its result
// (or its error) to w as one JSON line. Output is flushed whenever no more
// input is waiting, so an interactive session sees each answer at once.
func eachLine(ctx context.Context, r io.Reader, w io.Writer, fn func([]byte) (any, error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriterSize(w, 64<<10)
	var answer bytes.Buffer
	enc := json.NewEncoder(&answer)
	enc.SetEscapeHTML(false)
	for {
		if err := ctx.Err(); err != nil {
			bw.Flush()
			return err
		}
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return bw.Flush()
		}
		var out any
		switch {
		case errors.Is(err, errLineTooLong):
			out = errorLine(obsqra.Errorf(obsqra.EINVALID, "line longer than %d bytes", maxLineBytes))
		case err != nil:
			bw.Flush()
			return fmt.Errorf("read stdin: %w", err)
		case len(bytes.TrimSpace(line)) == 0:
			continue
		default:
			if out, err = fn(line); err != nil {
				out = errorLine(err)
			}
		}
		// One answer that cannot be JSON (a non-finite number) must not end
		// the stream: it becomes an error line like any other failure.
		answer.Reset()
		if err := enc.Encode(out); err != nil {
			answer.Reset()
			enc.Encode(errorLine(fmt.Errorf("encode answer: %w", err)))
		}
		if _, err := bw.Write(answer.Bytes()); err != nil {
			return fmt.Errorf("write stdout: %w", err)
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("write stdout: %w", err)
			}
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its end; a line over
// maxLineBytes is consumed and reported as errLineTooLong. io.EOF comes
// only when no bytes are left.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > maxLineBytes+2 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && (len(line) > 0 || tooLong):
			err = nil
		}
		if err != nil {
			return nil, err
		}
		if tooLong {
			return nil, errLineTooLong
		}
		return bytes.TrimRight(line, "\r\n"), nil
	}
}

type mlError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorLine is the JSON answer to a line that failed: codes are written
// as the issue documents them, EINVALID for obsqra.EINVALID and so on.
func errorLine(err error) any {
	code := obsqra.ErrorCode(err)
	if code == "" {
		code = obsqra.EINTERNAL
	}
	return struct {
		Error mlError `json:"error"`
	}{mlError{Code: "E" + strings.ToUpper(code), Message: obsqra.ErrorMessage(err)}}
}

// decodeLine decodes one JSON object strictly: unknown fields (names are
// case-sensitive), fields given twice, trailing data and wrongly typed
// values are EINVALID errors that name the field.
func decodeLine(line []byte, v any) error {
	if err := checkFields(json.NewDecoder(bytes.NewReader(line)), reflect.TypeOf(v), ""); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return obsqra.Errorf(obsqra.EINVALID, "unexpected data after the JSON object")
	}
	return nil
}

// checkFields walks the next JSON value of dec against type t and refuses
// what encoding/json lets through: a field name in another case than its
// tag, and a field given twice (where the last would silently win). Syntax
// and type errors are left to the decoder, which words them better.
func checkFields(dec *json.Decoder, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return nil
	}
	switch tok {
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil
			}
			name, _ := key.(string)
			if seen[name] {
				return obsqra.Errorf(obsqra.EINVALID, "field %q is given twice", path+name)
			}
			seen[name] = true
			ft, ok := fieldType(t, name)
			if !ok {
				return obsqra.Errorf(obsqra.EINVALID, "invalid input: unknown field %q", path+name)
			}
			if err := checkFields(dec, ft, path+name+"."); err != nil {
				return err
			}
		}
		dec.Token()
	case json.Delim('['):
		elem := t
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			elem = t.Elem()
		}
		for dec.More() {
			if err := checkFields(dec, elem, path); err != nil {
				return err
			}
		}
		dec.Token()
	}
	return nil
}

// fieldType returns the type of the struct field whose JSON name is
// exactly name. Anything but a struct accepts any name (the decoder then
// reports the type mismatch).
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	if t.Kind() != reflect.Struct {
		return t, true
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name && f.IsExported() {
			return f.Type, true
		}
	}
	return nil, false
}

func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return obsqra.Errorf(obsqra.EINVALID, "want a JSON object, got %s", typeErr.Value)
		}
		want := typeErr.Type.String()
		switch {
		case strings.Contains(want, "int"):
			want = "an integer"
		case strings.Contains(want, "float"):
			want = "a number"
		case strings.HasPrefix(want, "[]"):
			want = "an array"
		}
		return obsqra.Errorf(obsqra.EINVALID, "%s: want %s, got %s", typeErr.Field, want, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return obsqra.Errorf(obsqra.EINVALID, "invalid JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return obsqra.Errorf(obsqra.EINVALID, "invalid JSON: unexpected end of line")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return obsqra.Errorf(obsqra.EINVALID, "invalid input: %s", msg)
}

// required returns an EINVALID error naming the first nil field.
func required(fields ...any) error {
	for i := 0; i+1 < len(fields); i += 2 {
		name, v := fields[i].(string), fields[i+1]
		missing := false
		switch p := v.(type) {
		case *int64:
			missing = p == nil
		case *int:
			missing = p == nil
		case *float64:
			missing = p == nil
		case []int64:
			missing = p == nil
		case []float64:
			missing = p == nil
		}
		if missing {
			return obsqra.Errorf(obsqra.EINVALID, "%s is required", name)
		}
	}
	return nil
}

type scoreInput struct {
	Utilization *int64                  `json:"utilization"`
	Volatility  *int64                  `json:"volatility"`
	Liquidity   *int64                  `json:"liquidity"`
	AuditScore  *int64                  `json:"auditScore"`
	AgeDays     *int64                  `json:"ageDays"`
	Params      *obsqra.RiskParamsPatch `json:"params"`
}

type scoreComponents struct {
	Utilization int64 `json:"utilization"`
	Volatility  int64 `json:"volatility"`
	Liquidity   int64 `json:"liquidity"`
	Audit       int64 `json:"audit"`
	Age         int64 `json:"age"`
	Unclamped   int64 `json:"unclamped"`
}

func mlScore(line []byte) (any, error) {
	var in scoreInput
	if err := decodeLine(line, &in); err != nil {
		return nil, err
	}
	if err := required("utilization", in.Utilization, "volatility", in.Volatility, "liquidity", in.Liquidity,
		"auditScore", in.AuditScore, "ageDays", in.AgeDays); err != nil {
		return nil, err
	}
	params := obsqra.DefaultRiskParams()
	if in.Params != nil {
		params = in.Params.Apply(params)
	}
	s, err := ml.ScoreRisk(ml.RiskInputs{
		UtilizationBps: *in.Utilization,
		VolatilityBps:  *in.Volatility,
		LiquidityTier:  *in.Liquidity,
		AuditScore:     *in.AuditScore,
		AgeDays:        *in.AgeDays,
	}, params)
	if err != nil {
		return nil, err
	}
	return struct {
		Score      int64           `json:"score"`
		Components scoreComponents `json:"components"`
	}{s.Score, scoreComponents{s.Utilization, s.Volatility, s.Liquidity, s.Audit, s.Age, s.Unclamped}}, nil
}

func mlAllocate(line []byte) (any, error) {
	var in struct {
		Risks []int64 `json:"risks"`
		APYs  []int64 `json:"apys"`
	}
	if err := decodeLine(line, &in); err != nil {
		return nil, err
	}
	if err := required("risks", in.Risks, "apys", in.APYs); err != nil {
		return nil, err
	}
	w, err := ml.ParityAllocation(in.Risks, in.APYs)
	if err != nil {
		return nil, err
	}
	return struct {
		Weights []int64 `json:"weights"`
	}{w}, nil
}

func mlVerify(line []byte) (any, error) {
	var in struct {
		Weights            []int64 `json:"weights"`
		MaxSingle          *int64  `json:"maxSingle"`
		MinDiversification *int64  `json:"minDiversification"`
	}
	if err := decodeLine(line, &in); err != nil {
		return nil, err
	}
	if err := required("weights", in.Weights, "maxSingle", in.MaxSingle, "minDiversification", in.MinDiversification); err != nil {
		return nil, err
	}
	// The contract's integers are unsigned: a negative value is an input
	// it could never receive, not a weight that fails the check.
	for i, w := range in.Weights {
		if w < 0 {
			return nil, obsqra.Errorf(obsqra.EINVALID, "weights[%d] must not be negative, got %d", i, w)
		}
	}
	if *in.MaxSingle < 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "maxSingle must not be negative, got %d", *in.MaxSingle)
	}
	if *in.MinDiversification < 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "minDiversification must not be negative, got %d", *in.MinDiversification)
	}
	return struct {
		OK bool `json:"ok"`
	}{ml.CheckConstraints(in.Weights, *in.MaxSingle, *in.MinDiversification)}, nil
}

type optimizeInput struct {
	ExpectedApyBps     []float64   `json:"expectedApyBps"`
	Covariance         [][]float64 `json:"covariance"`
	Histories          [][]float64 `json:"histories"`
	Risks              []float64   `json:"risks"`
	MaxSingleBps       *int        `json:"maxSingleBps"`
	MinDiversification *int        `json:"minDiversification"`
	RiskTolerance      *string     `json:"riskTolerance"`
	RiskAversion       *float64    `json:"riskAversion"`
	RiskPenalty        *float64    `json:"riskPenalty"`
}

// mlOptimize solves the allocation QP. Fields left out take the defaults
// of a new user's preferences (MEDIUM tolerance, their max single weight
// and diversification); without covariance or histories the covariance is
// zero. riskTolerance sets the risk aversion λ and the risk penalty ρ
// together; riskAversion replaces λ (ρ staying the default tolerance's) and
// riskPenalty replaces ρ, zero included.
func mlOptimize(line []byte) (any, error) {
	var in optimizeInput
	if err := decodeLine(line, &in); err != nil {
		return nil, err
	}
	if err := required("expectedApyBps", in.ExpectedApyBps, "risks", in.Risks); err != nil {
		return nil, err
	}
	n := len(in.ExpectedApyBps)
	if len(in.Risks) != n {
		return nil, obsqra.Errorf(obsqra.EINVALID, "risks has %d entries but expectedApyBps has %d", len(in.Risks), n)
	}
	if in.Covariance != nil && in.Histories != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "give covariance or histories, not both")
	}
	if in.RiskTolerance != nil && in.RiskAversion != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "give riskTolerance or riskAversion, not both")
	}
	prefs := obsqra.DefaultPreferences()
	opt := ml.OptimizeInput{
		ExpectedApyBps:     in.ExpectedApyBps,
		Histories:          in.Histories,
		Risks:              in.Risks,
		MaxSingleBps:       prefs.MaxSingleBps,
		MinDiversification: prefs.MinDiversification,
	}
	if in.MaxSingleBps != nil {
		opt.MaxSingleBps = *in.MaxSingleBps
	}
	if in.MinDiversification != nil {
		opt.MinDiversification = *in.MinDiversification
	}
	tolerance := prefs.RiskTolerance
	if in.RiskTolerance != nil {
		tolerance = obsqra.RiskTolerance(*in.RiskTolerance)
		if !tolerance.IsValid() {
			return nil, obsqra.Errorf(obsqra.EINVALID, "riskTolerance must be LOW, MEDIUM or HIGH, got %q", *in.RiskTolerance)
		}
	}
	// Resolved here and passed explicitly (with no tolerance), so that an
	// explicit zero means zero.
	lambda, rho, err := ml.RiskAversionFor(tolerance)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    *float64
		dst  *float64
	}{{"riskAversion", in.RiskAversion, &lambda}, {"riskPenalty", in.RiskPenalty, &rho}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 {
			return nil, obsqra.Errorf(obsqra.EINVALID, "%s must not be negative, got %v", f.name, *f.v)
		}
		*f.dst = *f.v
	}
	opt.RiskAversion, opt.RiskPenalty = lambda, rho
	if in.Covariance != nil {
		if len(in.Covariance) != n {
			return nil, obsqra.Errorf(obsqra.EINVALID, "covariance has %d rows, want %d", len(in.Covariance), n)
		}
		data := make([]float64, 0, n*n)
		for i, row := range in.Covariance {
			if len(row) != n {
				return nil, obsqra.Errorf(obsqra.EINVALID, "covariance row %d has %d entries, want %d", i, len(row), n)
			}
			data = append(data, row...)
		}
		for i := range n {
			for j := range i {
				if a, b := data[i*n+j], data[j*n+i]; math.Abs(a-b) > 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b))) {
					return nil, obsqra.Errorf(obsqra.EINVALID, "covariance is not symmetric at [%d][%d]", i, j)
				}
			}
		}
		if n > 0 {
			opt.Covariance = mat.NewSymDense(n, data)
		}
	}
	a, err := ml.Optimize(opt)
	if err != nil {
		return nil, err
	}
	return struct {
		WeightsBps     []int   `json:"weightsBps"`
		ExpectedApyBps float64 `json:"expectedApyBps"`
		Variance       float64 `json:"variance"`
		Objective      float64 `json:"objective"`
		RiskAversion   float64 `json:"riskAversion"`
		RiskPenalty    float64 `json:"riskPenalty"`
		Exact          bool    `json:"exact"`
	}{a.WeightsBps, a.ExpectedApyBps, a.Variance, a.Objective, a.RiskAversion, a.RiskPenalty, a.SearchComplete}, nil
}
