package mlcli

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
)

// mlLines runs `obsqra ml cmd` on the given input lines and returns the
// output lines.
func mlLines(t *testing.T, cmd string, input string) []string {
	t.Helper()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{cmd}, strings.NewReader(input), &out); err != nil {
		t.Fatalf("Run(%s) = %v", cmd, err)
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

func TestMLLineCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmd, in, want string
	}{
		{"score", `{"utilization":8000,"volatility":2500,"liquidity":1,"auditScore":85,"ageDays":365}`,
			`{"score":44,"components":{"utilization":20,"volatility":10,"liquidity":5,"audit":4,"age":5,"unclamped":44}}`},
		{"score", `{"utilization":0,"volatility":0,"liquidity":0,"auditScore":100,"ageDays":730}`,
			`{"score":5,"components":{"utilization":0,"volatility":0,"liquidity":0,"audit":0,"age":0,"unclamped":0}}`},
		// Parameters given in part are merged over the defaults: tier 3 = 50, clampMax 100.
		{"score", `{"utilization":10000,"volatility":0,"liquidity":3,"auditScore":0,"ageDays":0,"params":{"wLiquidity3":50,"clampMax":100}}`,
			`{"score":100,"components":{"utilization":25,"volatility":0,"liquidity":50,"audit":30,"age":10,"unclamped":115}}`},
		{"score", `{"utilization":10001,"volatility":0,"liquidity":0,"auditScore":0,"ageDays":0}`,
			`{"error":{"code":"EINVALID","message":"utilization must be between 0 and 10000, got 10001"}}`},
		{"score", `{"utilization":1,"volatility":0,"liquidity":0,"auditScore":0,"ageDays":0,"params":{"ageCapDays":0}}`,
			`{"error":{"code":"EINVALID","message":"ageCapDays must be greater than 0"}}`},
		{"score", `{"utilization":1,"volatility":0,"liquidity":0,"ageDays":0}`,
			`{"error":{"code":"EINVALID","message":"auditScore is required"}}`},
		{"score", `{"utilization":1.5}`, `{"error":{"code":"EINVALID","message":"utilization: want an integer, got number 1.5"}}`},
		{"score", `{"utilization":1,"volatility":0,"liquidity":0,"auditScore":0,"ageDays":0,"params":{"wFoo":1}}`,
			`{"error":{"code":"EINVALID","message":"invalid input: unknown field \"params.wFoo\""}}`},
		{"score", `[]`, `{"error":{"code":"EINVALID","message":"want a JSON object, got array"}}`},
		// encoding/json alone would accept both of these.
		{"score", `{"Utilization":1,"volatility":0,"liquidity":0,"auditScore":0,"ageDays":0}`,
			`{"error":{"code":"EINVALID","message":"invalid input: unknown field \"Utilization\""}}`},
		{"score", `{"utilization":1,"volatility":0,"liquidity":0,"auditScore":0,"ageDays":0,"params":{"wAge":1,"wAge":2}}`,
			`{"error":{"code":"EINVALID","message":"field \"params.wAge\" is given twice"}}`},
		{"allocate", `{"risks":[1],"apys":[1],"apys":[2]}`,
			`{"error":{"code":"EINVALID","message":"field \"apys\" is given twice"}}`},
		{"score", `{} {}`, `{"error":{"code":"EINVALID","message":"unexpected data after the JSON object"}}`},
		{"allocate", `{"risks":[30,50,70],"apys":[500,800,1200]}`, `{"weights":[3310,3219,3471]}`},
		{"allocate", `{"risks":[1,2],"apys":[0,0]}`, `{"weights":[0,10000]}`},
		{"allocate", `{"risks":[1,2],"apys":[3]}`, `{"error":{"code":"EINVALID","message":"risks has 2 entries but apys has 1"}}`},
		{"allocate", `{"risks":[1]}`, `{"error":{"code":"EINVALID","message":"apys is required"}}`},
		{"verify", `{"weights":[4000,3000,3000],"maxSingle":4000,"minDiversification":3}`, `{"ok":true}`},
		{"verify", `{"weights":[4001,2999,3000],"maxSingle":4000,"minDiversification":3}`, `{"ok":false}`},
		{"verify", `{"weights":[5000,4000,999,1],"maxSingle":6000,"minDiversification":3}`, `{"ok":false}`},
		// Capped at the default 6000 bps: 0.4×500 + 0.6×800 = 680 bps;
		// variance 0.16×100 + 0.36×400 = 160; objective 680 − 0.01×160.
		{"optimize", `{"expectedApyBps":[500,800],"risks":[30,50],"covariance":[[100,0],[0,400]],"riskAversion":0.01,"riskPenalty":0}`,
			`{"weightsBps":[4000,6000],"expectedApyBps":680,"variance":160,"objective":678.4,"riskAversion":0.01,"riskPenalty":0,"exact":true}`},
		// The default tolerance's ρ = 4 stays: − 4 × (0.4×30 + 0.6×50) = − 168.
		{"optimize", `{"expectedApyBps":[500,800],"risks":[30,50],"covariance":[[100,0],[0,400]],"riskAversion":0.01}`,
			`{"weightsBps":[4000,6000],"expectedApyBps":680,"variance":160,"objective":510.4,"riskAversion":0.01,"riskPenalty":4,"exact":true}`},
		{"optimize", `{"expectedApyBps":[500,800,900],"risks":[30,50,10],"maxSingleBps":10000,"minDiversification":1,"riskAversion":0}`,
			`{"weightsBps":[0,0,10000],"expectedApyBps":900,"variance":0,"objective":860,"riskAversion":0,"riskPenalty":4,"exact":true}`},
		// One bp of APY is not worth 100 risk points at ρ = 4.
		{"optimize", `{"expectedApyBps":[499,500],"risks":[0,100],"maxSingleBps":10000,"minDiversification":0,"riskAversion":0.002}`,
			`{"weightsBps":[10000,0],"expectedApyBps":499,"variance":0,"objective":499,"riskAversion":0.002,"riskPenalty":4,"exact":true}`},
		{"optimize", `{"expectedApyBps":[1e308,1e308],"risks":[0,0],"covariance":[[1e308,0],[0,1e308]],"maxSingleBps":5000,"minDiversification":0}`,
			`{"error":{"code":"EINVALID","message":"expectedApyBps[0] = 1e+308 is not a number of bps between −1e+07 and 1e+07"}}`},
		{"optimize", `{"expectedApyBps":[1,2],"risks":[0,0],"covariance":[[1e13,0],[0,1]]}`,
			`{"error":{"code":"EINVALID","message":"covariance[0][0] = 1e+13 is not a number of bps² between −1e+12 and 1e+12"}}`},
		{"optimize", `{"expectedApyBps":[1,2],"risks":[0,0],"histories":[[1e160,-1e160],[1,2]]}`,
			`{"error":{"code":"EINVALID","message":"histories[0][0] = 1e+160 is not a number of bps between −1e+07 and 1e+07"}}`},
		{"optimize", `{"expectedApyBps":[1,2],"risks":[0,0],"riskPenalty":-1}`,
			`{"error":{"code":"EINVALID","message":"riskPenalty must not be negative, got -1"}}`},
		{"optimize", `{"expectedApyBps":[500,800],"risks":[30,50],"covariance":[[100,1],[0,400]]}`,
			`{"error":{"code":"EINVALID","message":"covariance is not symmetric at [1][0]"}}`},
		{"optimize", `{"expectedApyBps":[500,800],"risks":[30,50],"covariance":[[100,1]]}`,
			`{"error":{"code":"EINVALID","message":"covariance has 1 rows, want 2"}}`},
		{"optimize", `{"expectedApyBps":[500,800],"risks":[30,50],"riskTolerance":"YOLO"}`,
			`{"error":{"code":"EINVALID","message":"riskTolerance must be LOW, MEDIUM or HIGH, got \"YOLO\""}}`},
		{"optimize", `{"expectedApyBps":[500,800],"risks":[30,50],"riskTolerance":"LOW","riskAversion":1}`,
			`{"error":{"code":"EINVALID","message":"give riskTolerance or riskAversion, not both"}}`},
		{"optimize", `{"expectedApyBps":[500,800],"risks":[30]}`,
			`{"error":{"code":"EINVALID","message":"risks has 1 entries but expectedApyBps has 2"}}`},
		{"verify", `{"weights":[5000,-1],"maxSingle":6000,"minDiversification":1}`,
			`{"error":{"code":"EINVALID","message":"weights[1] must not be negative, got -1"}}`},
	}
	for _, tt := range tests {
		got := mlLines(t, tt.cmd, tt.in+"\n")
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("ml %s %s = %q, want %q", tt.cmd, tt.in, got, tt.want)
		}
	}
}

// TestMLGoesOnAfterBadLines feeds a stream with bad, blank, CRLF, too long
// and unterminated lines: one answer per input line, in order.
func TestMLGoesOnAfterBadLines(t *testing.T) {
	t.Parallel()
	in := `{"risks":[1],"apys":[1]}` + "\r\n" +
		"\n   \n" +
		"garbage\n" +
		`{"risks":[1],"apys":[` + strings.Repeat("1,", maxLineBytes/2) + "1]}\n" +
		`{"risks":[0,0],"apys":[1,1]}` // no final newline
	got := mlLines(t, "allocate", in)
	want := []string{
		`{"weights":[10000]}`,
		`{"error":{"code":"EINVALID","message":"invalid JSON at byte 1: invalid character 'g' looking for beginning of value"}}`,
		`{"error":{"code":"EINVALID","message":"line longer than 16777216 bytes"}}`,
		`{"weights":[5000,5000]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ml allocate = %q, want %q", got, want)
	}
}

func TestMLUnknownCommand(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	for _, args := range [][]string{{}, {"frobnicate"}, {"score", "extra"}} {
		if err := Run(context.Background(), args, strings.NewReader(""), &out); err == nil {
			t.Errorf("Run(%q) succeeded, want an error", args)
		}
	}
}

// TestMLAnswerThatIsNotJSON: an answer JSON cannot hold (here +Inf) becomes
// an error line and the stream goes on.
func TestMLAnswerThatIsNotJSON(t *testing.T) {
	t.Parallel()
	calls := 0
	var out bytes.Buffer
	err := eachLine(context.Background(), strings.NewReader("a\nb\n"), &out, func([]byte) (any, error) {
		calls++
		if calls == 1 {
			return map[string]float64{"x": math.Inf(1)}, nil
		}
		return map[string]int{"x": 1}, nil
	})
	want := `{"error":{"code":"EINTERNAL","message":"internal error"}}` + "\n" + `{"x":1}` + "\n"
	if err != nil || out.String() != want {
		t.Errorf("eachLine = %v, %q; want %q", err, out.String(), want)
	}
}
