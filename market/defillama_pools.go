// This file holds which DefiLlama pool is each protocol's: by pool id, or
// the largest pool of the protocol's project on its chain, kept while it
// stays listed.

package market

import (
	"math/big"
	"strings"

	"github.com/obsqra/obsqra"
)

// llamaSpec is what names a protocol's pool: a pool id, or a project and a
// chain.
type llamaSpec struct {
	pool, project, chain string
}

type llamaResolved struct {
	spec llamaSpec
	pool string
}

// llamaTarget is a protocol whose pool DefiLlama may know.
type llamaTarget struct {
	protocol obsqra.Protocol
	spec     llamaSpec
}

// targets returns the protocols that name a pool or a project, in order.
func (d *DefiLlama) targets(protocols []obsqra.Protocol) []llamaTarget {
	var out []llamaTarget
	for _, p := range protocols {
		spec := llamaSpec{
			pool:    strings.TrimSpace(p.SourceIDs[DefiLlamaPoolID]),
			project: strings.ToLower(strings.TrimSpace(p.SourceIDs[DefiLlamaProject])),
			chain:   strings.ToLower(strings.TrimSpace(p.Chain)),
		}
		if spec.pool != "" {
			spec.project, spec.chain = "", ""
		} else if spec.project == "" || spec.chain == "" {
			continue
		}
		out = append(out, llamaTarget{protocol: p, spec: spec})
	}
	return out
}

// cached returns the pool found earlier for t, if its ids are unchanged.
func (d *DefiLlama) cached(t llamaTarget) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.resolved[t.protocol.Slug]
	if !ok || r.spec != t.spec {
		return "", false
	}
	return r.pool, true
}

// resolve returns t's pool among rows, logging why when there is none.
func (d *DefiLlama) resolve(t llamaTarget, rows *llamaPools) (llamaPoolRow, bool) {
	slug := t.protocol.Slug
	if t.spec.pool != "" {
		row, ok := rows.byID[t.spec.pool]
		if !ok {
			d.cfg.Logger.Warn("defillama: protocol skipped", "protocol", slug, "pool", t.spec.pool, "reason", "the pool is not listed by /pools")
		}
		return row, ok
	}
	if pool, ok := d.cached(t); ok {
		if row, ok := rows.byID[pool]; ok && t.spec.matches(row) {
			return row, true
		}
	}
	var best llamaPoolRow
	var bestTVL *big.Rat
	found := false
	for _, row := range rows.byID {
		if !t.spec.matches(row) {
			continue
		}
		tvl, ok, err := llamaRat(row.TvlUsd)
		if !ok || err != nil {
			tvl = nil // unknown TVL ranks below every known one
		}
		if !found || llamaRanksAbove(tvl, row.Pool, bestTVL, best.Pool) {
			best, bestTVL, found = row, tvl, true
		}
	}
	d.mu.Lock()
	if found {
		d.resolved[slug] = llamaResolved{spec: t.spec, pool: best.Pool}
	} else {
		delete(d.resolved, slug)
	}
	d.mu.Unlock()
	if !found {
		d.cfg.Logger.Warn("defillama: protocol skipped", "protocol", slug, "project", t.spec.project, "chain", t.spec.chain, "reason", "no pool of the project on the chain is listed by /pools")
	}
	return best, found
}

// llamaRanksAbove reports whether a pool with TVL a (nil: unknown) and id
// aID ranks above one with b and bID: higher TVL first, then smaller id.
func llamaRanksAbove(a *big.Rat, aID string, b *big.Rat, bID string) bool {
	switch {
	case a == nil && b == nil:
		return aID < bID
	case a == nil:
		return false
	case b == nil:
		return true
	}
	if c := a.Cmp(b); c != 0 {
		return c > 0
	}
	return aID < bID
}

func (s llamaSpec) matches(row llamaPoolRow) bool {
	return strings.EqualFold(row.Project, s.project) && strings.EqualFold(row.Chain, s.chain)
}
