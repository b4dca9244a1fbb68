package portfolio

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
)

// Chain reads a wallet's token balances at one block (*starknet.Client is
// one): declared here so that the portfolio needs no Starknet client of
// its own.
type Chain interface {
	// BlockNumber returns the latest block's number.
	BlockNumber(ctx context.Context) (uint64, error)
	// BalanceAt returns owner's balance of token on block, through the
	// token's balance entry point.
	BalanceAt(ctx context.Context, block uint64, token obsqra.Felt, entryPoint string, owner obsqra.Felt) (*big.Int, error)
	// ConvertToAssetsAt returns what shares of the vault token are worth
	// in its asset on block.
	ConvertToAssetsAt(ctx context.Context, block uint64, token obsqra.Felt, balanceEntryPoint string, shares *big.Int) (*big.Int, error)
}

// Positions: how long a read of the chain may take, how often a block a
// node lacks is asked again, and how many wallets' answers are kept.
const (
	positionsTimeout  = 10 * time.Second
	laggingRetries    = 3
	laggingWait       = 250 * time.Millisecond
	positionsCacheCap = 1024
)

// positionsCache keeps the positions read at a block, by wallet and block:
// what a wallet held at a block never changes.
type positionsCache struct {
	mu      sync.Mutex
	entries map[positionsKey]*obsqra.WalletPositions
	order   []positionsKey
}

type positionsKey struct {
	wallet obsqra.Felt
	block  uint64
	// tokens identifies the protocols' position tokens the answer read:
	// an admin's change of them is another key.
	tokens string
}

func (c *positionsCache) get(k positionsKey) *obsqra.WalletPositions {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

func (c *positionsCache) put(k positionsKey, v *obsqra.WalletPositions) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[positionsKey]*obsqra.WalletPositions)
	}
	if _, ok := c.entries[k]; ok {
		return
	}
	if len(c.order) >= positionsCacheCap {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
	c.entries[k] = v
	c.order = append(c.order, k)
}

// WalletPositions reads the signed-in user's linked wallet's position in
// every protocol that names a position token, all at the latest block:
// the balance of each token (one block_id for every call), converted to
// the underlying asset for a share token, as an exact decimal. The answer
// for a wallet and block is kept: asked again at the same block, the node
// is not.
// Errors: EUNAUTHENTICATED; EINVALID when the server has no Starknet node
// or the user no linked wallet; EUNAVAILABLE when the node does not answer
// (or stays behind the block) within the timeout, or a token answers
// nonsense.
func (s *Service) WalletPositions(ctx context.Context) (*obsqra.WalletPositions, error) {
	if _, err := obsqra.RequireUser(ctx); err != nil {
		return nil, err
	}
	protocols, err := s.db.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	return s.walletPositions(ctx, protocols)
}

// walletPositions is WalletPositions over protocols, every protocol.
func (s *Service) walletPositions(ctx context.Context, protocols []obsqra.Protocol) (*obsqra.WalletPositions, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	if s.cfg.Chain == nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "wallet positions are not available: this server has no Starknet node (STARKNET_RPC_URL)")
	}
	u, err := s.db.UserByID(ctx, pr.User.ID)
	if err != nil {
		return nil, err
	}
	if u.WalletAddress == nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "wallet positions need a linked wallet: link one with requestWalletChallenge and connectWallet first")
	}
	wallet := *u.WalletAddress
	var named []obsqra.Protocol
	var tokens strings.Builder
	for _, p := range protocols {
		if p.PositionToken != nil {
			named = append(named, p)
			fmt.Fprintf(&tokens, "%d:%+v;", p.ID, *p.PositionToken)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, positionsTimeout)
	defer cancel()
	block, err := s.cfg.Chain.BlockNumber(ctx)
	if err != nil {
		return nil, chainError(ctx, "read the latest block", err)
	}
	key := positionsKey{wallet: wallet, block: block, tokens: tokens.String()}
	if hit := s.positions.get(key); hit != nil {
		return hit, nil
	}
	out := &obsqra.WalletPositions{Wallet: wallet, BlockNumber: block, Positions: make([]obsqra.WalletPosition, 0, len(named))}
	for _, p := range named {
		pos, err := s.readPosition(ctx, block, wallet, p)
		if err != nil {
			return nil, err
		}
		out.Positions = append(out.Positions, pos)
	}
	s.positions.put(key, out)
	return out, nil
}

// readPosition reads one protocol's position at block, asking again
// while the node answering lacks the block.
func (s *Service) readPosition(ctx context.Context, block uint64, wallet obsqra.Felt, p obsqra.Protocol) (obsqra.WalletPosition, error) {
	t := p.PositionToken
	var amount *big.Int
	var err error
	for try := 0; ; try++ {
		amount, err = s.cfg.Chain.BalanceAt(ctx, block, t.Address, t.EntryPoint, wallet)
		if err == nil && t.Shares && amount.Sign() > 0 {
			amount, err = s.cfg.Chain.ConvertToAssetsAt(ctx, block, t.Address, t.EntryPoint, amount)
		}
		if err == nil || s.cfg.Lagging == nil || !errors.Is(err, s.cfg.Lagging) || try == laggingRetries {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(laggingWait << try):
		}
	}
	if err != nil {
		if s.cfg.Lagging != nil && errors.Is(err, s.cfg.Lagging) {
			return obsqra.WalletPosition{}, obsqra.Errorf(obsqra.EUNAVAILABLE, "the Starknet node is behind block %d: try again in a moment", block)
		}
		return obsqra.WalletPosition{}, chainError(ctx, "read the position token of "+p.Slug, err)
	}
	d, err := tokenAmount(amount, t.Decimals)
	if err != nil {
		return obsqra.WalletPosition{}, obsqra.Errorf(obsqra.EUNAVAILABLE, "the position token of %s answered %s: %s", p.Slug, amount, obsqra.ErrorMessage(err))
	}
	return obsqra.WalletPosition{ProtocolID: p.ID, Token: t.Address, Underlying: t.Underlying, Amount: d}, nil
}

// chainError codes a failed read of the chain.
func chainError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		return &obsqra.Error{Code: obsqra.EUNAVAILABLE, Message: fmt.Sprintf("the Starknet node did not answer in %s: try again later", positionsTimeout), Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	// The cause (which endpoint, what it answered) is logged with Err,
	// not told to the client.
	return &obsqra.Error{Code: obsqra.EUNAVAILABLE, Message: fmt.Sprintf("could not %s from the Starknet node: try again later", what), Err: err}
}

// tokenAmount is v base units of a token with decimals decimals, exactly.
func tokenAmount(v *big.Int, decimals int) (obsqra.Decimal, error) {
	digits := v.String()
	if v.Sign() < 0 {
		return obsqra.Decimal{}, fmt.Errorf("a negative amount")
	}
	if decimals == 0 {
		return obsqra.ParseDecimal(digits)
	}
	if len(digits) <= decimals {
		digits = strings.Repeat("0", decimals-len(digits)+1) + digits
	}
	return obsqra.ParseDecimal(digits[:len(digits)-decimals] + "." + digits[len(digits)-decimals:])
}

// walletWeights derives allocation weights from the signed-in user's
// wallet positions: each protocol's share of the total, in bps summing to
// exactly 10000 by the largest remainder (ties to the lower protocol id),
// and the block they were read at. All positions held must be in one
// asset: amounts of different assets do not add up.
// protocols are every protocol. Errors: those of WalletPositions; EINVALID
// when the wallet holds no position, or positions in more than one asset.
func (s *Service) walletWeights(ctx context.Context, protocols []obsqra.Protocol) ([]obsqra.WeightInput, int64, error) {
	wp, err := s.walletPositions(ctx, protocols)
	if err != nil {
		return nil, 0, err
	}
	slug := make(map[int64]string, len(protocols))
	for _, p := range protocols {
		slug[p.ID] = p.Slug
	}
	type held struct {
		id     int64
		amount *big.Rat
	}
	var hs []held
	total := new(big.Rat)
	assets := map[obsqra.Felt][]string{}
	for _, p := range wp.Positions {
		if p.Amount.Rat().Sign() <= 0 {
			continue
		}
		hs = append(hs, held{p.ProtocolID, p.Amount.Rat()})
		total.Add(total, p.Amount.Rat())
		assets[p.Underlying] = append(assets[p.Underlying], slug[p.ProtocolID])
	}
	switch {
	case len(hs) == 0:
		return nil, 0, obsqra.Errorf(obsqra.EINVALID, "input.fromWallet: your wallet %s holds no position in any protocol at block %d", wp.Wallet, wp.BlockNumber)
	case len(assets) > 1:
		var parts []string
		for asset, slugs := range assets {
			parts = append(parts, fmt.Sprintf("%s in %s", strings.Join(slugs, ", "), asset))
		}
		slices.Sort(parts)
		return nil, 0, obsqra.Errorf(obsqra.EINVALID, "input.fromWallet: your positions are in %d different assets (%s), which cannot be weighed against each other: give the weights", len(assets), strings.Join(parts, "; "))
	}
	slices.SortFunc(hs, func(a, b held) int { return cmp.Compare(a.id, b.id) })
	weights := make([]obsqra.WeightInput, len(hs))
	type rest struct {
		i    int
		frac *big.Rat
	}
	rests := make([]rest, len(hs))
	sum := 0
	for i, h := range hs {
		exact := new(big.Rat).Quo(new(big.Rat).Mul(h.amount, big.NewRat(10000, 1)), total)
		floor := new(big.Int).Quo(exact.Num(), exact.Denom())
		weights[i] = obsqra.WeightInput{Protocol: slug[h.id], WeightBps: int(floor.Int64())}
		sum += weights[i].WeightBps
		rests[i] = rest{i, new(big.Rat).Sub(exact, new(big.Rat).SetInt(floor))}
	}
	slices.SortStableFunc(rests, func(a, b rest) int { return b.frac.Cmp(a.frac) })
	for k := 0; sum < 10000; k++ {
		weights[rests[k].i].WeightBps++
		sum++
	}
	return weights, int64(wp.BlockNumber), nil
}
