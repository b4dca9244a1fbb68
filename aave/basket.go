package aave

import (
	"math"
	"sort"
	"strings"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
)

// Risk metadata of Aave V3 for the risk score: audited many times over,
// and launched on 2022-03-16 (Ethereum followed on 2023-01-27; both are
// beyond the contract's 730-day age cap for this data). Its TVL is not in
// the file, so the liquidity tier is the one for an unknown TVL.
const (
	AuditScore    = 95
	LiquidityTier = 2
)

// Launch is the day Aave V3 went live, 2022-03-16 (its first networks;
// Ethereum followed on 2023-01-27, also past the 730-day age cap).
const Launch obsqra.Date = 19067

// NewBasket aligns reserves on the days every one of them has and returns
// them as a strategy backtest basket: the liquidity index as ground truth,
// the supply rate (APY in bps) and the estimated utilization (bps) as what
// strategies see. Errors: EINVALID with fewer than two common days.
func NewBasket(name string, reserves []Reserve) (*ml.Basket, error) {
	if len(reserves) == 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "basket %s has no reserves", name)
	}
	count := make(map[obsqra.Date]int)
	for _, r := range reserves {
		for _, row := range r.Rows {
			count[obsqra.DateOf(row.Snapshot)]++
		}
	}
	var days []obsqra.Date
	for d, c := range count {
		if c == len(reserves) {
			days = append(days, d)
		}
	}
	sort.Slice(days, func(i, j int) bool { return days[i] < days[j] })
	if len(days) < 2 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "basket %s: its reserves share fewer than two days", name)
	}
	b := &ml.Basket{Name: name, Days: days}
	for _, r := range reserves {
		byDay := make(map[obsqra.Date]Row, len(r.Rows))
		for _, row := range r.Rows {
			byDay[obsqra.DateOf(row.Snapshot)] = row
		}
		index, apy, util := make([]float64, len(days)), make([]float64, len(days)), make([]float64, len(days))
		for t, d := range days {
			row := byDay[d]
			index[t] = row.LiquidityIndex
			apy[t] = math.Round(row.LiquidityRate * 10_000)
			util[t] = math.Round(row.Utilization() * 10_000)
		}
		b.Reserves = append(b.Reserves, r.Key)
		b.Index = append(b.Index, index)
		b.APYBps = append(b.APYBps, apy)
		b.UtilizationBps = append(b.UtilizationBps, util)
		b.LiquidityTier = append(b.LiquidityTier, LiquidityTier)
		b.AuditScore = append(b.AuditScore, AuditScore)
		b.LaunchDay = append(b.LaunchDay, Launch)
	}
	return b, b.Validate()
}

// stablecoins are the USD stablecoins whose reserves make the baskets:
// the assets a yield allocator moves between without taking a price view.
var stablecoins = map[string]bool{
	"USDC": true, "USDC.e": true, "USDbC": true, "USDT": true, "USDt": true, "USD₮0": true,
	"DAI": true, "DAI.e": true, "WXDAI": true, "USDS": true, "GHO": true, "FRAX": true,
	"LUSD": true, "PYUSD": true, "RLUSD": true, "FDUSD": true, "crvUSD": true, "USDe": true,
	"USDtb": true, "AUSD": true, "sUSD": true,
}

// IsStablecoin reports whether symbol is one of the USD stablecoins the
// baskets are made of.
func IsStablecoin(symbol string) bool { return stablecoins[symbol] }

// StablecoinBaskets returns one basket per network of its USD stablecoin
// reserves that were observed on at least minCoverage of the network's
// days (so a reserve listed late does not shrink the common window to
// nothing), for networks with at least two such reserves. Baskets are
// named "<network>-stablecoins" and sorted by name.
func StablecoinBaskets(reserves []Reserve, minCoverage float64) ([]*ml.Basket, error) {
	byNetwork := make(map[string][]Reserve)
	days := make(map[string]map[obsqra.Date]bool)
	for _, r := range reserves {
		if days[r.Network] == nil {
			days[r.Network] = make(map[obsqra.Date]bool)
		}
		for _, row := range r.Rows {
			days[r.Network][obsqra.DateOf(row.Snapshot)] = true
		}
		if IsStablecoin(r.Symbol) {
			byNetwork[r.Network] = append(byNetwork[r.Network], r)
		}
	}
	networks := make([]string, 0, len(byNetwork))
	for n := range byNetwork {
		networks = append(networks, n)
	}
	sort.Strings(networks)
	var out []*ml.Basket
	for _, n := range networks {
		var members []Reserve
		for _, r := range byNetwork[n] {
			if float64(len(r.Rows)) >= minCoverage*float64(len(days[n])) {
				members = append(members, r)
			}
		}
		if len(members) < 2 {
			continue
		}
		b, err := NewBasket(strings.ToLower(n)+"-stablecoins", members)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
