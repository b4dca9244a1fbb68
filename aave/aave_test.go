package aave

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/obsqratest"
)

func TestReadFileKeepsTheLastSnapshotOfEachDay(t *testing.T) {
	t.Parallel()
	reserves, err := ReadFile("testdata/excerpt.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(reserves) != 2 {
		t.Fatalf("ReadFile found %d reserves, want 2", len(reserves))
	}
	wx := reserves[1]
	if wx.Key != "gnosis/WXDAI/0xe91d153e0b41518a2ce8dd3d7944fa863463a97d" || reserves[0].Symbol != "GNO" {
		t.Fatalf("reserves = %s, %s; want GNO then WXDAI", reserves[0].Key, wx.Key)
	}
	s := wx.LiquidityRates()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	var days []string
	for _, d := range s.Days {
		days = append(days, d.String())
	}
	if got, want := strings.Join(days, " "), "2025-07-22 2025-07-24 2025-07-25 2025-08-01 2025-08-02"; got != want {
		t.Errorf("days = %s, want %s", got, want)
	}
	// 2025-08-01 has four snapshots; the last (04:23:17) is kept.
	day, _ := obsqra.ParseDate("2025-08-01")
	last := wx.Rows[3]
	if obsqra.DateOf(last.Snapshot) != day || last.Snapshot.Format("15:04:05") != "04:23:17" {
		t.Errorf("row for 2025-08-01 is the snapshot at %v, want 04:23:17", last.Snapshot)
	}
	if v, _ := s.ValueOn(day); v != last.LiquidityRate {
		t.Errorf("rate on 2025-08-01 = %v, want %v", v, last.LiquidityRate)
	}
	if got := wx.Rows[0]; got.LiquidityRate != 0.02916 || got.VariableBorrowRate != 0.048744 ||
		got.LiquidityIndex != 1.084986 || got.ReserveFactor != 0.25 || !got.Active || got.Frozen || !got.BorrowingEnabled {
		t.Errorf("first WXDAI row = %+v", got)
	}
}

func TestUtilization(t *testing.T) {
	t.Parallel()
	tests := []struct {
		row  Row
		want float64
	}{
		// 0.02916 / (0.048744 × 0.75)
		{Row{LiquidityRate: 0.02916, VariableBorrowRate: 0.048744, ReserveFactor: 0.25}, 0.02916 / (0.048744 * 0.75)},
		{Row{LiquidityRate: 0, VariableBorrowRate: 0.01}, 0},
		{Row{LiquidityRate: 0.01, VariableBorrowRate: 0}, 0},
		{Row{LiquidityRate: 0.05, VariableBorrowRate: 0.05, ReserveFactor: 0.1}, 1},
	}
	for _, tt := range tests {
		if got := tt.row.Utilization(); got != tt.want {
			t.Errorf("Utilization(%+v) = %v, want %v", tt.row, got, tt.want)
		}
	}
}

func TestReadRefusesBadInput(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile("testdata/excerpt.csv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(good), "\n")
	tests := []struct {
		name, csv, want string
	}{
		{"empty", "", "empty"},
		{"missing column", strings.Replace(lines[0], "liquidity_index", "li", 1) + "\n", "liquidity_index"},
		{"bad number", lines[0] + "\n" + strings.Replace(lines[1], ",gnosis,GNO,0x9c58bacc331c9aa871afd802db6379a98e80cedb,", ",gnosis,GNO,0x9c58bacc331c9aa871afd802db6379a98e80cedb,x", 1) + "\n", "line 2"},
		{"bad time", lines[0] + "\n" + strings.Replace(lines[1], "2025-07-22T", "2025-07-22 ", 1) + "\n", "snapshot_utc"},
		{"bad bool", lines[0] + "\n" + strings.Replace(lines[1], "False", "maybe", 1) + "\n", "frozen"},
		{"short row", lines[0] + "\n" + "a,b\n", "line 2"},
		{"absurd rate", lines[0] + "\n" + strings.Replace(lines[1], ",0.004717,", ",1e160,", 1) + "\n", "current_liquidity_rate"},
		{"negative rate", lines[0] + "\n" + strings.Replace(lines[1], ",0.03325,", ",-0.03,", 1) + "\n", "current_variable_borrow_rate"},
		{"zero index", lines[0] + "\n" + strings.Replace(lines[1], ",1.002576,", ",0,", 1) + "\n", "liquidity_index"},
	}
	for _, tt := range tests {
		_, err := Read(strings.NewReader(tt.csv))
		if obsqra.ErrorCode(err) != obsqra.EINVALID || !strings.Contains(obsqra.ErrorMessage(err), tt.want) {
			t.Errorf("%s: Read error = %v, want EINVALID mentioning %q", tt.name, err, tt.want)
		}
	}
}

// TestSharedData reads the whole shared file when it is beside the checkout.
func TestSharedData(t *testing.T) {
	t.Parallel()
	const path = "aave_v3_daily_rates_dev.csv"
	reserves, err := ReadFile(obsqratest.SharedData(t, path))
	if err != nil {
		t.Fatal(err)
	}
	days := 0
	for _, r := range reserves {
		if err := r.LiquidityRates().Validate(); err != nil {
			t.Fatalf("%s: %v", r.Key, err)
		}
		days += len(r.Rows)
	}
	// 154 reserves; 56,733 rows of which some are extra snapshots of a day.
	if len(reserves) != 154 || days >= 56733 || days < 50000 {
		t.Errorf("shared data: %d reserves, %d reserve-days; want 154 and a little under 56733", len(reserves), days)
	}
	baskets, err := StablecoinBaskets(reserves, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	if len(baskets) != 7 {
		t.Errorf("%d stablecoin baskets, want one per network (7)", len(baskets))
	}
	for _, b := range baskets {
		t.Logf("%s: %d reserves, %d days %s–%s", b.Name, len(b.Reserves), len(b.Days), b.Days[0], b.Days[len(b.Days)-1])
		if len(b.Days) < 300 {
			t.Errorf("%s has only %d common days", b.Name, len(b.Days))
		}
	}
}

func TestNewBasketAlignsOnCommonDays(t *testing.T) {
	t.Parallel()
	reserves, err := ReadFile("testdata/excerpt.csv")
	if err != nil {
		t.Fatal(err)
	}
	// Drop GNO's 2025-07-24 so the common days are four.
	gno := reserves[0]
	gno.Rows = append(append([]Row(nil), gno.Rows[:1]...), gno.Rows[2:]...)
	b, err := NewBasket("gnosis", []Reserve{gno, reserves[1]})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Days) != 4 || b.Days[1].String() != "2025-07-25" {
		t.Fatalf("basket days = %v, want 4 days without 07-24", b.Days)
	}
	wx := reserves[1].Rows[2] // WXDAI on 2025-07-25
	if b.Index[1][1] != wx.LiquidityIndex || b.APYBps[1][1] != 270 || b.UtilizationBps[1][1] != math.Round(wx.Utilization()*10000) {
		t.Errorf("WXDAI on 07-25: index %v, apy %v, util %v; want %v, 270, %v",
			b.Index[1][1], b.APYBps[1][1], b.UtilizationBps[1][1], wx.LiquidityIndex, math.Round(wx.Utilization()*10000))
	}
	if _, err := NewBasket("none", nil); obsqra.ErrorCode(err) != obsqra.EINVALID {
		t.Errorf("NewBasket(nil) error = %v, want EINVALID", err)
	}
}

func TestLaunchDay(t *testing.T) {
	t.Parallel()
	if Launch.String() != "2022-03-16" {
		t.Errorf("Launch = %s, want 2022-03-16", Launch)
	}
}
