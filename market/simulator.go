package market

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/obsqra/obsqra"
)

// Simulator is the default market feed: an invented but plausible market,
// so that a server without network access still shows protocols whose
// yields, utilizations and TVLs move. It is deterministic: the same seed,
// protocols, last samples and now give the same samples, bit for bit on a
// given platform (it reads no clock and no global random source; every
// random draw comes from a PCG generator seeded from a hash of the seed,
// the protocol's slug and the time step).
//
// Each protocol follows its own path, made of three parts:
//
//   - APY: a mean-reverting (Ornstein–Uhlenbeck) process on the logarithm
//     of the APY around a protocol-specific level (its mean in ordinary
//     times; stress spikes lift a lending market's long-run mean by some
//     10 %), with occasional jumps.
//     Lending markets revert within days (θ = 0.2/day) and move about 12 %
//     of their level; DEX fee APYs are noisier (about 30 %) and less
//     persistent (θ = 0.35/day).
//   - Utilization: for lending markets, the utilization at which a kinked
//     interest rate model (kink at 80 %; the borrow rate at 100 % is seven
//     times the rate at the kink) pays the current supply APY, so the two
//     move together; about 40–90 % in ordinary times. Other categories
//     have none (0).
//   - TVL in USD: a geometric random walk that is pulled back towards the
//     protocol's level over months (half-life 60 days), 2–3 % a day.
//
// About once in 200 days a protocol goes through a stress event: the APY
// spikes (a lending market's utilization jumps to 95–99 %, some ten times
// its usual APY; a DEX's fee APY doubles to quadruples), holds for a day
// and then decays over a few (time constant 2.5 days), while 20–40 % of
// the TVL leaves at once and returns slowly.
//
// Samples carry whole basis points and cents; a poll evolves from the
// stored sample, so at a ten-second interval a lending APY, which moves
// by a third of a basis point in that time, changes a basis point now and
// then (its daily variance stays the model's).
//
// The five seeded Starknet protocols have hand-picked levels that resemble
// their markets (Ekubo and Nostra tens of millions of USD, JediSwap a few
// millions, so that liquidity tiers 0 to 2 all occur); any other protocol
// gets levels hashed from its slug and category: lending APYs 2.5–7.5 %,
// DEX fee APYs 6–22 %, other categories 3–10 %, TVLs 2–80 million USD.
// The levels do not depend on the seed; the paths do.
//
// A Simulator holds no mutable state and is safe for concurrent use.
type Simulator struct {
	seed uint64
	// speed is how many simulated seconds pass per real second between
	// polls (1 = real time). History is always day by day.
	speed float64
}

var _ Source = (*Simulator)(nil)

// NewSimulatorAt returns a simulator whose paths are fixed by seed, with
// the market between polls moving speed times faster than the clock
// (speed ≥ 1; 1 is real time): at a ten-second poll a
// market moves about a third of a basis point in real time, which integer
// scores never show, so a demonstration runs the market faster (8640, the
// server's default: a market day per ten-second poll). Samples keep their
// real observation times; only the size of each step grows.
func NewSimulatorAt(seed uint64, speed float64) *Simulator {
	return &Simulator{seed: seed, speed: max(1, speed)}
}

// Name returns obsqra.SourceSimulated.
func (s *Simulator) Name() string { return obsqra.SourceSimulated }

// simEpoch is the first day of every path: the day-by-day process starts
// from a random draw of its long-run distribution the day before, so the
// value of any day is the same whichever window asks for it.
var simEpoch = obsqra.DateOf(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))

// endOfDay is when a daily sample is observed: the last second of its UTC
// day, so a daily sample is the last sample of its day, as the daily
// series of the forecasts expect.
const endOfDay = 24*time.Hour - time.Second

// History returns days daily samples of each enabled protocol, one per UTC
// day for the days before now's day, each observed at 23:59:59 UTC, oldest
// first (day by day; within a day, in the order of protocols). Days before
// 2020-01-01, where every path starts, are left out. Each (seed, slug) has
// one fixed path, so overlapping windows agree on the days they share.
// Errors: the context's, when it is done.
func (s *Simulator) History(ctx context.Context, protocols []obsqra.Protocol, now time.Time, days int) ([]obsqra.MetricsInput, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("simulate history: %w", err)
	}
	if days <= 0 {
		return nil, nil
	}
	last := obsqra.DateOf(now) - 1 // the newest day returned
	first := simEpoch
	if f := int64(last) - int64(days) + 1; f > int64(first) {
		first = obsqra.Date(f)
	}
	if last < first {
		return nil, nil
	}
	enabled := enabledProtocols(protocols)
	n := int(last - first + 1)
	out := make([]obsqra.MetricsInput, n*len(enabled))
	for j, p := range enabled {
		pr := newProfile(p)
		_, err := walk(ctx, pr, s.stream(p.Slug), last, func(d obsqra.Date, st state) error {
			if d < first {
				return nil
			}
			m, err := pr.sample(p.Slug, st, d.Time().Add(endOfDay))
			out[int(d-first)*len(enabled)+j] = m
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("simulate history of %s: %w", p.Slug, err)
		}
	}
	return out, nil
}

// Poll returns one sample of each enabled protocol, observed at now
// truncated to the second. A protocol's sample evolves from last[p.ID] (its
// latest stored simulated sample) over the time elapsed since it was
// observed, by the same process as the daily path at that time scale
// (ten seconds move a lending APY by a fraction of a basis point, a DEX's
// by a few, and a TVL by a few hundredths of a percent). A protocol without
// a usable last sample (none, or one without a TVL) starts from its daily
// path: the path's value at the end of the day before now's day (the
// newest day History returns), evolved to now. A last sample observed at
// or after now is returned unchanged, at now. The randomness of a poll is
// fixed by (seed, slug, now).
// Errors: the context's, when it is done.
func (s *Simulator) Poll(ctx context.Context, protocols []obsqra.Protocol, last map[int64]obsqra.MetricsSample, now time.Time) ([]obsqra.MetricsInput, error) {
	now = now.UTC().Truncate(time.Second)
	var out []obsqra.MetricsInput
	for _, p := range enabledProtocols(protocols) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("simulate poll: %w", err)
		}
		prev, ok := last[p.ID]
		var pp *obsqra.MetricsSample
		if ok {
			pp = &prev
		}
		m, _, err := s.poll(ctx, p, pp, now)
		if err != nil {
			return nil, fmt.Errorf("simulate poll of %s: %w", p.Slug, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// poll is Poll for one protocol; it also says which events the step went
// through, for the tests. now is already truncated to the second.
func (s *Simulator) poll(ctx context.Context, p obsqra.Protocol, last *obsqra.MetricsSample, now time.Time) (obsqra.MetricsInput, event, error) {
	pr := newProfile(p)
	g := s.stream(p.Slug)
	var (
		st    state
		since time.Time
	)
	tvl, ok := lastTVL(last)
	if ok {
		if !last.ObservedAt.Before(now) {
			return obsqra.MetricsInput{Protocol: p.Slug, ObservedAt: now, ApyBps: last.ApyBps,
				TvlUsd: last.TvlUsd, UtilizationBps: last.UtilizationBps}, 0, nil
		}
		st = pr.fromSample(last.ApyBps, tvl)
		since = last.ObservedAt
	} else {
		prevDay := obsqra.DateOf(now) - 1
		var err error
		if st, err = walk(ctx, pr, g, prevDay, nil); err != nil {
			return obsqra.MetricsInput{}, 0, err
		}
		since = prevDay.Time().Add(endOfDay)
	}
	dt := now.Sub(since).Seconds() * max(1, s.speed) / (24 * 60 * 60)
	st, ev := pr.step(st, pr.coeffs(dt), g.at(tagPoll, now.Unix()))
	m, err := pr.sample(p.Slug, st, now)
	return m, ev, err
}

// lastTVL returns the TVL of last as a float, and whether last is a sample
// the process can evolve from.
func lastTVL(last *obsqra.MetricsSample) (float64, bool) {
	if last == nil || last.TvlUsd == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(last.TvlUsd.String(), 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// walk steps the daily path from its start to the end of day until,
// calling visit (when not nil) with each day's end state, and returns the
// last state.
func walk(ctx context.Context, pr *profile, g *stream, until obsqra.Date, visit func(obsqra.Date, state) error) (state, error) {
	day := pr.coeffs(1)
	st := pr.initial(g)
	for d := simEpoch; d <= until; d++ {
		if (d-simEpoch)%512 == 0 {
			if err := ctx.Err(); err != nil {
				return state{}, err
			}
		}
		st, _ = pr.step(st, day, g.at(tagDay, int64(d)))
		if visit != nil {
			if err := visit(d, st); err != nil {
				return state{}, err
			}
		}
	}
	return st, nil
}

// enabledProtocols returns the protocols the simulator makes data for:
// the enabled ones that have no real data source of their own. A protocol
// whose source ids name anything but DefiLlama (an imported Aave reserve,
// say: "aave_v3") has real data, which invented samples must not mix with;
// the seeded Starknet protocols name only DefiLlama, which is another live
// feed, so the simulator stands in for it.
func enabledProtocols(protocols []obsqra.Protocol) []obsqra.Protocol {
	var out []obsqra.Protocol
	for _, p := range protocols {
		if p.Enabled && !hasOwnSource(p) {
			out = append(out, p)
		}
	}
	return out
}

func hasOwnSource(p obsqra.Protocol) bool {
	for k := range p.SourceIDs {
		if k != DefiLlamaPoolID && k != DefiLlamaProject {
			return true
		}
	}
	return false
}

// Parameters shared by every protocol.
const (
	tvlTheta    = math.Ln2 / 60 // per day: TVL deviations halve in 60 days
	stressRate  = 1.0 / 200     // stress events per day
	stressHold  = 1.0           // days a stress spike holds at its peak
	stressDecay = 2.5           // days: time constant of its decay after
	// A stress event takes 20–40 % of the TVL away.
	stressTVLLossMin, stressTVLLossMax = 0.20, 0.40
	// A stress event pushes a lending market's utilization to 95–99 %.
	stressUtilMin, stressUtilMax = 0.95, 0.99
	maxApyBps                    = 99_999
	maxTvlUsd                    = 999_999_999_999.99
)

// dynamics are the parameters of a category's process.
type dynamics struct {
	theta    float64 // APY mean reversion, per day
	sigma    float64 // APY diffusion, in log APY per √day
	jumpRate float64 // APY jumps per day
	jumpSD   float64 // APY jump size, standard deviation in log APY
	tvlSigma float64 // TVL diffusion, in log TVL per √day
	// Non-lending stress events multiply the APY by stressMin–stressMax.
	stressMin, stressMax float64
	// Ranges of hashed levels.
	apyMin, apyMax float64 // bps
}

var (
	lendingDynamics = dynamics{theta: 0.20, sigma: 0.07, jumpRate: 1.0 / 30, jumpSD: 0.20, tvlSigma: 0.020,
		apyMin: 250, apyMax: 750}
	dexDynamics = dynamics{theta: 0.35, sigma: 0.22, jumpRate: 1.0 / 12, jumpSD: 0.45, tvlSigma: 0.030,
		stressMin: 2, stressMax: 4, apyMin: 600, apyMax: 2200}
	otherDynamics = dynamics{theta: 0.15, sigma: 0.08, jumpRate: 1.0 / 45, jumpSD: 0.25, tvlSigma: 0.025,
		stressMin: 1.5, stressMax: 3, apyMin: 300, apyMax: 1000}
)

// seededLevels are the levels of the protocols the migrations seed, chosen
// to resemble their markets rather than hashed.
var seededLevels = map[string]struct {
	category obsqra.ProtocolCategory
	apyBps   float64
	util     float64
	tvlUsd   float64
}{
	"nostra":   {obsqra.CategoryLending, 450, 0.68, 42e6},
	"zklend":   {obsqra.CategoryLending, 380, 0.62, 26e6},
	"vesu":     {obsqra.CategoryLending, 620, 0.72, 7.5e6},
	"ekubo":    {obsqra.CategoryDEX, 1350, 0, 68e6},
	"jediswap": {obsqra.CategoryDEX, 1900, 0, 3.2e6},
}

// profile is one protocol's process: its dynamics, its levels, and
// constants derived from them.
type profile struct {
	dynamics
	lending bool
	apy     float64 // level of the APY, bps
	util    float64 // lending: utilization at the level APY, 0–1
	tvl     float64 // level of the TVL, USD
	// logMean is the long-run variance of log APY over 2: the APY is
	// level·exp(x − logMean + stress), so its long-run mean (without
	// stress) is the level.
	logMean float64
	g0      float64 // lending: rateCurve(util)
	maxMult float64 // lending: the APY at full utilization over the level
}

func newProfile(p obsqra.Protocol) *profile {
	pr := &profile{dynamics: otherDynamics}
	switch p.Category {
	case obsqra.CategoryLending:
		pr.dynamics, pr.lending = lendingDynamics, true
	case obsqra.CategoryDEX:
		pr.dynamics = dexDynamics
	}
	if lv, ok := seededLevels[p.Slug]; ok && lv.category == p.Category {
		pr.apy, pr.util, pr.tvl = lv.apyBps, lv.util, lv.tvlUsd
	} else {
		h := fnv1a(string(p.Category) + "/" + p.Slug)
		u := func() float64 { h = splitmix(h); return float64(h>>11) / (1 << 53) }
		pr.apy = pr.apyMin + (pr.apyMax-pr.apyMin)*u()
		pr.util = 0.55 + 0.20*u()
		pr.tvl = 2e6 * math.Pow(40, u()) // 2–80 million, log-uniform
	}
	variance := (pr.sigma*pr.sigma + pr.jumpRate*pr.jumpSD*pr.jumpSD) / (2 * pr.theta)
	pr.logMean = variance / 2
	if pr.lending {
		pr.g0 = rateCurve(pr.util)
		pr.maxMult = rateCurve(1) / pr.g0
	}
	return pr
}

// The lending markets' kinked interest rate model, normalised: the borrow
// rate rises linearly to 1 at the kink, then steeply (slope ×kinkSlope).
// The supply APY is proportional to borrow rate × utilization.
const (
	kink      = 0.8
	kinkSlope = 6.0
	steep     = kinkSlope / (1 - kink) // the borrow rate's slope above the kink
)

// rateCurve is the supply APY at utilization u, up to a constant.
func rateCurve(u float64) float64 {
	if u <= kink {
		return u * u / kink
	}
	return (1 + steep*(u-kink)) * u
}

// utilizationFor inverts rateCurve: the utilization that pays y.
func utilizationFor(y float64) float64 {
	if y <= 0 {
		return 0
	}
	if y <= rateCurve(kink) {
		return math.Sqrt(y * kink)
	}
	b := 1 - steep*kink
	return (-b + math.Sqrt(b*b+4*steep*y)) / (2 * steep)
}

// state is a path's position: x and s in log APY, y in log TVL.
type state struct {
	x    float64 // APY deviation (mean-reverting, with jumps)
	y    float64 // TVL deviation from the level
	s    float64 // the peak of the latest stress spike (0: none)
	sAge float64 // days since that spike began
}

// stress is the part of log APY the latest stress spike still adds.
func (st state) stress() float64 {
	if st.s == 0 {
		return 0
	}
	return st.s * stressFade(st.sAge)
}

// stressFade is what remains of a stress spike age days after it began.
func stressFade(age float64) float64 {
	return math.Exp(-max(age-stressHold, 0) / stressDecay)
}

// event says what happened in a step besides ordinary diffusion.
type event uint8

const (
	eventJump event = 1 << iota
	eventStress
)

// coeffs are the factors of a step of dt days.
type coeffs struct {
	dt      float64 // days
	ax, bx  float64 // x ← ax·x + bx·N(0,1)
	ay, by  float64 // y ← ay·y + by·N(0,1)
	pJump   float64 // probability of an APY jump in the step
	pStress float64 // probability of a stress event in the step
}

// coeffs returns the exact discretisation of the process over dt days, so
// that a step of a day and 8640 steps of ten seconds have the same law
// (except for jumps and stress, of which a step has at most one).
func (pr *profile) coeffs(dt float64) coeffs {
	if !(dt > 0) {
		return coeffs{ax: 1, ay: 1}
	}
	ou := func(theta, sigma float64) (float64, float64) {
		return math.Exp(-theta * dt), sigma * math.Sqrt(-math.Expm1(-2*theta*dt)/(2*theta))
	}
	c := coeffs{dt: dt}
	c.ax, c.bx = ou(pr.theta, pr.sigma)
	c.ay, c.by = ou(tvlTheta, pr.tvlSigma)
	c.pJump = -math.Expm1(-pr.jumpRate * dt)
	c.pStress = -math.Expm1(-stressRate * dt)
	return c
}

// initial draws the state the day before simEpoch from the process's
// long-run distribution.
func (pr *profile) initial(g *stream) state {
	r := g.at(tagInit, int64(simEpoch))
	return state{
		x: math.Sqrt(2*pr.logMean) * r.NormFloat64(),
		y: pr.tvlSigma / math.Sqrt(2*tvlTheta) * r.NormFloat64(),
	}
}

// step moves st by one step of the coefficients c.
func (pr *profile) step(st state, c coeffs, r *rand.Rand) (state, event) {
	// Always the same four draws first, then the ones events need.
	zx, zy, uj, us := r.NormFloat64(), r.NormFloat64(), r.Float64(), r.Float64()
	st.x = c.ax*st.x + c.bx*zx
	st.y = c.ay*st.y + c.by*zy
	st.sAge += c.dt
	if st.s != 0 && st.sAge > stressHold+40*stressDecay {
		st.s, st.sAge = 0, 0 // faded out
	}
	// An event happened at a uniform time within the step and has been
	// fading since: a step over a long outage most likely finds it gone,
	// a step of a day or ten seconds finds a stress spike at its peak.
	var ev event
	if uj < c.pJump {
		ev |= eventJump
		age := c.dt * r.Float64()
		st.x += math.Exp(-pr.theta*age) * pr.jumpSD * r.NormFloat64()
	}
	if us < c.pStress {
		ev |= eventStress
		age := c.dt * r.Float64()
		var spike float64
		if pr.lending {
			u := stressUtilMin + (stressUtilMax-stressUtilMin)*r.Float64()
			spike = math.Log(rateCurve(u)/pr.g0) - (st.x - pr.logMean)
		} else {
			spike = math.Log(pr.stressMin + (pr.stressMax-pr.stressMin)*r.Float64())
		}
		if spike*stressFade(age) > st.stress() {
			st.s, st.sAge = spike, age
		}
		loss := stressTVLLossMin + (stressTVLLossMax-stressTVLLossMin)*r.Float64()
		st.y += math.Exp(-tvlTheta*age) * math.Log(1-loss)
	}
	return st, ev
}

// fromSample is the state that gives a sample of apyBps and tvlUsd; a stress
// spike in progress becomes part of the APY deviation.
func (pr *profile) fromSample(apyBps int, tvlUsd float64) state {
	return state{
		x: math.Log(float64(max(apyBps, 1))/pr.apy) + pr.logMean,
		y: math.Log(tvlUsd / pr.tvl),
	}
}

// sample is the observation of st at t.
func (pr *profile) sample(slug string, st state, t time.Time) (obsqra.MetricsInput, error) {
	mult := math.Exp(st.x - pr.logMean + st.stress())
	util := 0
	if pr.lending {
		mult = min(mult, pr.maxMult) // the rate model pays no more
		util = int(math.Round(10000 * min(utilizationFor(mult*pr.g0), 1)))
	}
	apy := int(min(math.Round(pr.apy*mult), maxApyBps))
	tvl := min(pr.tvl*math.Exp(st.y), maxTvlUsd)
	d, err := obsqra.ParseDecimal(strconv.FormatFloat(tvl, 'f', 2, 64))
	if err != nil {
		return obsqra.MetricsInput{}, fmt.Errorf("format tvl %g: %w", tvl, err)
	}
	return obsqra.MetricsInput{Protocol: slug, ObservedAt: t, ApyBps: apy, TvlUsd: &d, UtilizationBps: util}, nil
}

// Tags keep the random streams of days, polls and initial states apart.
const (
	tagDay  uint64 = 0x6461_7973_7465_7001
	tagPoll uint64 = 0x706f_6c6c_7374_6502
	tagInit uint64 = 0x696e_6974_7374_6103
)

// stream is the randomness of one protocol's path under one seed: a PCG
// generator that is seeded anew for each time step, so that any step's
// draws are reproducible without drawing those of the steps before.
type stream struct {
	key uint64 // the seed mixed with the slug
	pcg rand.PCG
	r   *rand.Rand
}

func (s *Simulator) stream(slug string) *stream {
	g := &stream{key: splitmix(s.seed ^ splitmix(fnv1a(slug)))}
	g.r = rand.New(&g.pcg)
	return g
}

// at returns the generator of one time step (a day, or a poll's second),
// seeded from the stream's key, tag and step. It is the stream's one
// generator, reseeded: draws from an earlier at are no longer valid.
func (g *stream) at(tag uint64, step int64) *rand.Rand {
	g.pcg.Seed(g.key, splitmix(tag^splitmix(uint64(step))))
	return g.r
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// splitmix is SplitMix64's finaliser: a bijective mix of all bits.
func splitmix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
