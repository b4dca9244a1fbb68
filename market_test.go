package obsqra_test

import (
	"testing"

	"github.com/obsqra/obsqra"
)

func TestRiskParamsPatchMergesOverDefaults(t *testing.T) {
	t.Parallel()
	v := func(n int) *int { return &n }
	got := obsqra.RiskParamsPatch{WLiquidity2: v(20), AgeCapDays: v(365), ClampMax: v(90)}.Apply(obsqra.DefaultRiskParams())
	want := obsqra.DefaultRiskParams()
	want.WLiquidity2, want.AgeCapDays, want.ClampMax = 20, 365, 90
	if got != want {
		t.Errorf("Apply = %+v, want %+v", got, want)
	}
	if (obsqra.RiskParamsPatch{}).Apply(obsqra.DefaultRiskParams()) != obsqra.DefaultRiskParams() {
		t.Error("an empty patch changed the defaults")
	}
}
