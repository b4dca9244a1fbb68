package obsqra

// WalletPositions are a wallet's positions in the protocols that name a
// position token, all read at one block.
type WalletPositions struct {
	Wallet      Felt
	BlockNumber uint64
	Positions   []WalletPosition
}

// WalletPosition is what a wallet holds in one protocol: an amount of the
// underlying asset (a share token's balance converted), exact.
type WalletPosition struct {
	ProtocolID int64
	Token      Felt
	Underlying Felt
	Amount     Decimal
}
