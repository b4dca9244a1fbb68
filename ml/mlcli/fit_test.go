package mlcli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/obsqratest"
)

// TestRefitSharedData refits the global model on the shared data and
// checks that the committed parameters, ml/globalparams.go, are exactly
// what the fit writes: the coefficients in the binary are reproducible from
// the data (`make refit` rewrites the file).
func TestRefitSharedData(t *testing.T) {
	if raceEnabled {
		t.Skip("too slow under -race; make test runs it in a second pass without")
	}
	csv := obsqratest.SharedData(t, "aave_v3_daily_rates_dev.csv")
	out := filepath.Join(t.TempDir(), "globalparams.go")
	if err := Run(context.Background(), []string{"fit", "--csv", csv, "--out", out}, strings.NewReader(""), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../globalparams.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Fatal("ml/globalparams.go is not what `obsqra ml fit` writes from the shared data: run `make refit` and commit the result")
	}
}

func TestFitWritesLoadableParameters(t *testing.T) {
	t.Parallel()
	// The generated source of any fit declares a valid DefaultGlobal; on
	// the small test file (2 series of 59 days) only short horizons have
	// the forecasts a fit needs, and the command says which do not.
	csv := writeRatesCSV(t)
	var stdout bytes.Buffer
	err := Run(context.Background(), []string{"fit", "--csv", csv}, strings.NewReader(""), &stdout)
	if err == nil || !strings.Contains(err.Error(), "fewer than 200") {
		t.Fatalf("fit on 2 short series: %v, want the horizons without enough forecasts named", err)
	}
	for _, args := range [][]string{{"fit"}, {"fit", "--csv", csv, "extra"}, {"fit", "--nope"}} {
		if err := Run(context.Background(), args, strings.NewReader(""), &stdout); err == nil {
			t.Errorf("ml %v: no error", args)
		}
	}
	src, err := GlobalSource(&ml.DefaultGlobal, 154)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte("const DefaultGlobalVersion = \""+ml.DefaultGlobalVersion+"\"")) {
		t.Error("the source of the committed parameters does not carry their version")
	}
	if err := ml.DefaultGlobal.Validate(); err != nil {
		t.Errorf("committed parameters: %v", err)
	}
}
