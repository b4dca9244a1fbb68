package resolvers

import (
	"context"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
)

// RiskParams returns the resolver of RiskParams' fields.
func (r *Resolver) RiskParams() graph.RiskParamsResolver { return riskParamsResolver{r} }

type riskParamsResolver struct{ *Resolver }

// Deployed resolves RiskParams.deployed.
func (r riskParamsResolver) Deployed(ctx context.Context, p *obsqra.RiskParams, chainVersion *string) (*obsqra.DeployedRiskParams, error) {
	return r.Market.DeployedParams(ctx, p, chainVersion)
}

// DeployedRiskParams returns the resolver of DeployedRiskParams' fields.
func (r *Resolver) DeployedRiskParams() graph.DeployedRiskParamsResolver {
	return deployedRiskParamsResolver{}
}

type deployedRiskParamsResolver struct{}

// ChainVersion resolves DeployedRiskParams.chainVersion.
func (deployedRiskParamsResolver) ChainVersion(_ context.Context, d *obsqra.DeployedRiskParams) (string, error) {
	return d.RiskParams.ChainVersion.String(), nil
}

// OurVersion resolves DeployedRiskParams.ourVersion.
func (deployedRiskParamsResolver) OurVersion(_ context.Context, d *obsqra.DeployedRiskParams) (int, error) {
	return d.Ours.Version, nil
}
